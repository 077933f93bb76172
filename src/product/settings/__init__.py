"""Settings for both process types (web and gpu runner), read from the environment.

Production is the default: DEBUG is off unless asked for and SECRET_KEY must be given.
Each module holds one concern, in the order they build on each other, and docs/configuration.md
has a table per module with every variable it reads (a test holds the two together):

- ``core``: Django itself (debug mode, secret key, hosts, apps, middleware, templates, locale);
- ``security``: HTTPS, cookies, request bodies, passwords and sign-in throttling;
- ``database``: the PostgreSQL connection and its pool;
- ``web``: static files and live-status streams;
- ``inference``: requests, their queue, and each user's limits;
- ``runner``: the gpu runner;
- ``operations``: logs, database outages, health and metrics.

``DJANGO_SETTINGS_MODULE=product.settings`` loads them all: Django reads the upper-case names
of this package, which the star imports bring in.
"""

from product.settings.core import *  # noqa: F403
from product.settings.security import *  # noqa: F403
from product.settings.database import *  # noqa: F403
from product.settings.web import *  # noqa: F403
from product.settings.inference import *  # noqa: F403
from product.settings.runner import *  # noqa: F403
from product.settings.operations import *  # noqa: F403

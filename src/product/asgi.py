"""ASGI entry point of the web process: `uvicorn product.asgi:application`."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")

django_application = get_asgi_application()

# Outermost: a body over the limit is refused before Django reads it (product.body_limit).
from product.body_limit import BodyLimit  # noqa: E402  (needs Django set up first)

application = BodyLimit(django_application, limit=settings.MAX_REQUEST_BODY_BYTES)

"""ASGI entry point of the web process: `uvicorn product.asgi:application`."""

import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")
django.setup(set_prefix=False)  # What django.core.asgi.get_asgi_application does first.

# Needs Django set up first.
from product.batches.feeder import FeedingBatches  # noqa: E402
from product.batches.urls import UPLOAD_PATHS  # noqa: E402
from product.body_limit import BodyLimit  # noqa: E402
from product.web_handler import SyncViewsInOneHop  # noqa: E402

# Django's handler, serving sync views in one thread hop (product.web_handler).
django_application = SyncViewsInOneHop()

# Outermost: a body over the limit is refused before Django reads it (product.body_limit);
# batch uploads have a limit of their own. Inside: this process's batch feeder starts with it.
application = BodyLimit(
    FeedingBatches(django_application), limit=settings.MAX_REQUEST_BODY_BYTES,
    limits_by_path=dict.fromkeys(UPLOAD_PATHS, settings.BATCH_MAX_UPLOAD_BYTES),
)

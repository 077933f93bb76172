"""ASGI entry point of the web process: `uvicorn product.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")

application = get_asgi_application()

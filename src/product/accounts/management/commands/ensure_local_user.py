import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from product.accounts.services import token_create


class Command(BaseCommand):
    help = (
        "For local runs: make sure a staff user exists with a known password and print how to "
        "sign in. The password is set anew on every call unless --password is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", help="Defaults to a new random password.")
        parser.add_argument("--token", action="store_true", help="Also print a new API token.")

    def handle(self, *args, username, password, token, **options):
        password = password or secrets.token_urlsafe(12)
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        user.set_password(password)
        user.save()
        self.stdout.write(f"Sign in as  {username} / {password}")
        if token:
            _, secret = token_create(user=user, name="local")
            self.stdout.write(f"API token   {secret}")

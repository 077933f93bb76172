from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from product.accounts.services import token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None,
            help="Days the token is valid for (default: until revoked).",
        )

    def handle(self, *args, username, name, expires_in_days, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}.") from None
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        _, secret = token_create(user=user, name=name, expires_in_days=expires_in_days)
        self.stdout.write(secret)

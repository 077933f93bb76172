from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from product.accounts.services import token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for.")

    def handle(self, *args, username, name, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}.") from None
        _, secret = token_create(user=user, name=name)
        self.stdout.write(secret)

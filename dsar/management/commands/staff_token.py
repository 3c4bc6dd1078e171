"""python manage.py staff_token USERNAME [--role reviewer|admin]: prints a new API token last."""

from django.core.management.base import BaseCommand

from dsar.staff import ROLE_REVIEWER, ROLES, staff_token_create, staff_user_ensure


class Command(BaseCommand):
    help = "Create the staff user if needed, give it a role, and print a new API token as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, default=ROLE_REVIEWER)

    def handle(self, *args, username: str, role: str, **options):
        user = staff_user_ensure(username=username, role=role)
        self.stderr.write(f"{username} is a staff {role}.")
        self.stdout.write(staff_token_create(user=user))

"""python manage.py staff_setup_code USERNAME: prints a one-time code with which the staff member
sets up their first authenticator (the first admin's, or any member's when no admin can)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dsar.staff import SETUP_CODE_VALID, staff_setup_code_issue


class Command(BaseCommand):
    help = "Print a one-time code for a staff member to set up their first authenticator with, as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        member = get_user_model().objects.filter(username=username, is_staff=True).first()
        if member is None:
            raise CommandError(f"No staff member is named {username!r}.")
        code = staff_setup_code_issue(user_id=member.pk)
        self.stderr.write(f"{username} sets up their authenticator in the console with this code, "
                          f"valid for {SETUP_CODE_VALID.total_seconds() / 3600:.0f} hours:")
        self.stdout.write(code)

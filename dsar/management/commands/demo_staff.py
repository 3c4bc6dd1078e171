"""python manage.py demo_staff --password PW: the demo's staff logins (admin, reviewer), if missing."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_member_create


class Command(BaseCommand):
    help = "Create the demo staff users admin and reviewer with the given password, unless they exist."

    def add_arguments(self, parser):
        parser.add_argument("--password", required=True)

    def handle(self, *args, password: str, **options):
        for username, role in (("admin", ROLE_ADMIN), ("reviewer", ROLE_REVIEWER)):
            if get_user_model().objects.filter(username=username).exists():
                continue
            staff_member_create(username=username, email="", role=role, password=password)
            self.stdout.write(f"created demo staff user {username} ({role})")

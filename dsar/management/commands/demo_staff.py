"""python manage.py demo_staff --password PW [--host HOST] [--remove]: the demo's staff logins.

`make run` calls it with a password generated for this install. The logins (admin, reviewer) are
marked as the demo's (the group `demo`) and exist only while the product serves the loopback
address: for any other address it refuses while they exist, since anyone who reached the console
could sign in with them. Each of them, like every staff member, signs in with a code from an
authenticator app too: it prints each one's one-time setup code while they have no authenticator (a
first authenticator needs one)."""

import ipaddress

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_member_create, staff_setup_code_issue

DEMO_GROUP = "demo"
DEMO_STAFF = (("admin", ROLE_ADMIN), ("reviewer", ROLE_REVIEWER))


def loopback(host: str) -> bool:
    """Whether the address serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = "Create the demo's staff logins (admin, reviewer) on a loopback address, or refuse another while they exist."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="their password, when they are created")
        parser.add_argument("--host", default="127.0.0.1", help="the address the product is about to serve")
        parser.add_argument("--remove", action="store_true", help="delete the demo's logins")

    def handle(self, *args, password: str | None, host: str, remove: bool, **options):
        demo = get_user_model().objects.filter(groups__name=DEMO_GROUP)
        if remove:
            names = sorted(demo.values_list("username", flat=True))
            demo.delete()
            self.stdout.write(f"removed the demo's staff logins: {', '.join(names) or 'none'}")
            return
        if not loopback(host):
            if names := sorted(demo.values_list("username", flat=True)):
                raise CommandError(f"the demo's staff logins ({', '.join(names)}) exist, and {host} is not a loopback address: anyone "
                                   "reaching it could sign in with them. Remove them (`manage.py demo_staff --remove`) or serve 127.0.0.1.")
            return
        if password is None:
            raise CommandError("--password is needed to create the demo's staff logins")
        group, _ = Group.objects.get_or_create(name=DEMO_GROUP)
        for username, role in DEMO_STAFF:
            if get_user_model().objects.filter(username=username).exists():
                continue
            staff_member_create(username=username, email="", role=role, password=password).groups.add(group)
            self.stdout.write(f"created demo staff user {username} ({role})")
        set_up = TOTPDevice.objects.filter(confirmed=True).values("user")
        for member in demo.exclude(pk__in=set_up).order_by("username"):
            self.stdout.write(f"{member.username}'s one-time setup code for their authenticator: "
                              f"{staff_setup_code_issue(user_id=member.pk)}")

"""python manage.py staff_token USERNAME [--role reviewer|admin] [--days N] | --revoke:
prints a new API token last, or revokes the member's tokens."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, ROLES, TOKEN_VALID, staff_has_role, staff_role_change, staff_token_create, staff_tokens_revoke, staff_user_ensure


class Command(BaseCommand):
    help = ("Print a new API token for a staff member as the last line (creating them as a reviewer, or --role, if they do not "
            "exist; changing an existing member's role only when --role says so), or revoke their tokens with --revoke.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, help="their role: given to a new member (default reviewer); changes an existing one's")
        parser.add_argument("--days", type=int, default=TOKEN_VALID.days, help=f"how long the token works (default {TOKEN_VALID.days})")
        parser.add_argument("--revoke", action="store_true", help="revoke every token of the member instead")

    def handle(self, *args, username: str, role: str | None, days: int, revoke: bool, **options):
        member = get_user_model().objects.filter(username=username, is_staff=True).first()
        if revoke:
            if member is None:
                raise CommandError(f"No staff member is named {username!r}.")
            self.stdout.write(f"revoked {staff_tokens_revoke(user=member)} token(s) of {username}")
            return
        if days < 1:
            raise CommandError("--days must be 1 or more")
        if member is None:
            member = staff_user_ensure(username=username, role=role or ROLE_REVIEWER)
            self.stderr.write(f"created {username}, a staff {role or ROLE_REVIEWER}.")
        elif role is not None and role != (current := ROLE_ADMIN if staff_has_role(member, ROLE_ADMIN) else ROLE_REVIEWER):
            staff_role_change(user_id=member.pk, role=role)
            self.stderr.write(f"changed {username}'s role from {current} to {role}, as --role said.")
        self.stderr.write(f"a token for {username}, working for {days} days:")
        self.stdout.write(staff_token_create(user=member, valid=dt.timedelta(days=days)))

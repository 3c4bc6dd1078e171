"""python manage.py verify_audit: walk the audit trail's hash chain; exit 1 on any break."""

from django.core.management.base import BaseCommand, CommandError

from dsar.lifecycle import audit_verify
from dsar.models import GENESIS_HASH, AuditEntry, AuditSeal


class Command(BaseCommand):
    help = "Check that no audit entry was edited, deleted or reordered (the hash chain is whole)."

    def handle(self, *args, **options):
        problems = audit_verify()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"the audit trail is broken in {len(problems)} places")
        # The newest seal's hash, to keep elsewhere: a chain cannot show the loss of its own end.
        head = AuditSeal.objects.order_by("-seq").values_list("hash", flat=True).first() or GENESIS_HASH
        self.stdout.write(f"audit trail intact: {AuditEntry.objects.count()} entries; head {head}")

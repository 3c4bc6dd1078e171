"""python manage.py verify_audit: walk the audit trail's chain and compare it with the newest head
shipped off the database; exit 1 on any break."""

from django.core.management.base import BaseCommand, CommandError

from dsar.lifecycle import audit_head_check, audit_unkeyed_count, audit_verify
from dsar.models import GENESIS_HASH, AuditEntry, AuditSeal


class Command(BaseCommand):
    help = ("Check that no audit entry was edited, forged, deleted or reordered (each entry's MAC and the chain are whole), "
            "and that the chain still holds the newest head shipped off the database.")

    def handle(self, *args, **options):
        problems = audit_verify()
        head_problem, compared = audit_head_check()
        if head_problem:
            problems.append(head_problem)
        if problems:
            self.stdout.write(f"compared with {compared}")
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"the audit trail is broken in {len(problems)} places")
        # The newest seal's hash: the audit_head_ship job keeps it elsewhere, and so can the reader.
        head = AuditSeal.objects.order_by("-seq").values_list("hash", flat=True).first() or GENESIS_HASH
        self.stdout.write(f"audit trail intact: {AuditEntry.objects.count()} entries; head {head}")
        self.stdout.write(f"compared with {compared}")
        if unkeyed := audit_unkeyed_count():
            self.stdout.write(f"{unkeyed} entries from before the trail was keyed have no MAC: their hashes show an edit, "
                              "not a forgery")

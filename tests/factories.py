"""Model factories: rows in a given state, without going through the whole flow."""

from __future__ import annotations

from django.utils import timezone

from connectors.taxonomy import category_ids
from dsar import verification
from dsar.deadlines import due_at_for
from dsar.lifecycle import audit_record
from dsar.models import Request


def request_make(*, status: str = "unverified", type: str = "access", email: str = "someone@example.com", code: str | None = None,
                 token: str | None = None, code_issued: bool = False) -> Request:
    """A request in `status`, with the code `code`, or (`code_issued`) one issued as filing issues it."""
    now = timezone.now()
    request = Request(
        type=type,
        status=status,
        email=email,
        categories=category_ids(),
        jurisdiction="gdpr",
        created_at=now,
        due_at=due_at_for(now, "gdpr"),
        code_hash=verification.code_hash(code) if code else "",
        code_expires_at=now + timezone.timedelta(minutes=30) if code else None,
        token_hash=verification.token_hash(token) if token else "",
    )
    if code_issued:
        verification.code_issue(request, now)
    request.save(force_insert=True)
    from django.db import transaction

    with transaction.atomic():
        audit_record(request, actor="subject", action="filed", from_status="")
    return request

"""Model factories: rows in a given state, without going through the whole flow."""

from __future__ import annotations

from django.utils import timezone

from connectors.taxonomy import category_ids
from dsar import verification
from dsar.deadlines import due_at_for
from dsar.lifecycle import audit_record
from dsar.models import Request


def request_make(*, status: str = "unverified", type: str = "access", email: str = "someone@example.com", code: str | None = None, token: str | None = None) -> Request:
    now = timezone.now()
    request = Request.objects.create(
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
    from django.db import transaction

    with transaction.atomic():
        audit_record(request, actor="subject", action="filed", from_status="")
    return request

"""Data obtained from other organisations: exported with its source, and suppressed on erasure.

Erasing a subject's third-party records also writes a suppression entry per source (a keyed hash
of the identity, never the email) in the same transaction, so the estate refuses to re-import the
person from that source; the receipt lists the sources so the operator can notify them.
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa

from .base import ErasureReceipt, Identity
from .sql import SqlConnector


def suppression_key() -> bytes:
    """The key of the suppression hash: DSAR_SUPPRESSION_KEY, or one derived from the secret key."""
    from django.conf import settings

    configured = settings.DSAR_SUPPRESSION_KEY
    return configured.encode() if configured else hashlib.sha256(f"suppression:{settings.SECRET_KEY}".encode()).digest()


def suppression_hash(email: str) -> str:
    """The identity as the suppression list stores it."""
    return hmac.new(suppression_key(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def suppressed_sources(conn: sa.Connection, email: str) -> set[str]:
    rows = conn.execute(sa.text("SELECT source FROM suppressions WHERE identity_hash = :h"), {"h": suppression_hash(email)})
    return {source for (source,) in rows}


class ThirdPartyConnector(SqlConnector):
    """The SQL connector over the third-party records, adding suppression to erasure."""

    def before_erase(self, conn: sa.Connection, identity: Identity, wanted: set[str], receipt: ErasureReceipt) -> None:
        sources = conn.execute(
            sa.text("SELECT DISTINCT source FROM records WHERE lower(trim(email)) = :e AND category = ANY(:c) ORDER BY source"),
            {"e": identity.email, "c": sorted(wanted)},
        ).scalars().all()
        for source in sources:
            conn.execute(
                sa.text("INSERT INTO suppressions (identity_hash, source) VALUES (:h, :s) ON CONFLICT DO NOTHING"),
                {"h": suppression_hash(identity.email), "s": source},
            )
        receipt.suppressed_sources.extend(sources)

"""Audit verification (`manage.py verify_audit`): each link of the chain is checked on its own.

A seal's place in the chain is two facts, its sequence number and the previous seal's hash; someone
covering their tracks may keep one right and not the other, and each alone must give them away.
"""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from dsar.models import AuditEntry, AuditSeal

from ..factories import request_make
from ..support.audit import triggers_aside

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trail() -> list[AuditEntry]:
    for email in ("ann@example.com", "bob@example.com", "cai@example.com", "dee@example.com"):
        request_make(email=email)
    call_command("verify_audit")
    return list(AuditEntry.objects.order_by("seal__seq"))


def problems(capsys) -> tuple[str, list[str]]:
    with pytest.raises(CommandError) as broken:
        call_command("verify_audit")
    return str(broken.value), capsys.readouterr().err.splitlines()


def test_a_removal_hidden_by_renumbering_the_seals_after_it_is_detected(trail, capsys):
    removed, following = trail[1], trail[2]
    with triggers_aside() as cursor:
        cursor.execute("DELETE FROM dsar_auditseal WHERE entry_id = %s", [removed.pk])
        cursor.execute("DELETE FROM dsar_auditentry WHERE id = %s", [removed.pk])
        # seq 3 and 4 become 2 and 3, through negative numbers: seq is unique at every row
        cursor.execute("UPDATE dsar_auditseal SET seq = -seq WHERE seq > 2")
        cursor.execute("UPDATE dsar_auditseal SET seq = -seq - 1 WHERE seq < 0")
    assert list(AuditSeal.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3]  # no gap left
    assert problems(capsys) == (
        "the audit trail is broken in 1 places",
        [f"entry {following.pk}: does not follow the entry before it (one was removed or reordered)"],
    )


def test_a_gap_in_the_sequence_is_detected_even_where_the_hashes_still_link(trail, capsys):
    last = trail[-1]
    with triggers_aside():
        AuditSeal.objects.filter(entry=last).update(seq=9)
    assert problems(capsys) == (
        "the audit trail is broken in 1 places",
        [f"entry {last.pk}: does not follow the entry before it (one was removed or reordered)"],
    )

"""A deployment whose one system has a recipient of each kind, and a deletion run to completion in
the test's own process: what the tests of telling recipients start from."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import time_machine
from django.db import transaction

from connectors.base import Identity
from connectors.registry import connectors_reset
from connectors.systems import system_load
from dsar import processing, services
from dsar.models import ConnectorTask, Request

from ..factories import request_make
from .erasure_hook import ErasureHook
from .probe import ProbeConnector, probe_plan

SECRET = "hostly-hook-secret"
CRM = """\
name: crm
kind: python
class: tests.support.recipients.NumberedProbe
provides: [customer_no]
recipients:
  - name: Hostly GmbH
    role: processor
    country: DE
    notify: {{webhook: {{url: "{url}", secret: "${{HOSTLY_HOOK_SECRET}}"}}}}
  - {{name: Mailbird Inc., role: processor, country: IE, notify: {{email: dpo@mailbird.example}}}}
  - {{name: Tax office, role: public_authority, country: DE, notify: {{manual: "Note the erasure in the tax file."}}}}
"""
CRM_WITHOUT_RECIPIENTS = "name: crm\nkind: python\nclass: tests.support.recipients.NumberedProbe\nprovides: [customer_no]\n"


class NumberedProbe(ProbeConnector):
    """The probe, which also finds the person's customer number for other systems."""

    def identities_found(self, identity: Identity) -> dict[str, list[str]]:
        return {"customer_no": ["C-1042"]}


def crm_configure(settings, tmp_path: Path, text: str) -> None:
    """Make `text` the deployment's one system file, `crm` (the probe, which holds feedback)."""
    (tmp_path / "crm.yaml").write_text(text)
    settings.DSAR_SYSTEMS = {"crm": system_load(tmp_path / "crm.yaml", environ={"HOSTLY_HOOK_SECRET": SECRET})}
    connectors_reset()


def deletion_completed(email: str, *, at: dt.datetime, records: int = 2) -> Request:
    """A deletion of `email`'s data (`records` feedback records in crm), approved and run to
    completion at `at`, in this process."""
    probe_plan(email, records=records)
    request = request_make(status="pending_review", type="deletion", email=email)
    # In one transaction: the doorbells ring once it commits, when the work is done, so a worker
    # running beside a browser test (which knows none of this test's systems) finds nothing to take.
    with time_machine.travel(at, tick=False), transaction.atomic():
        services.request_approve(request_id=request.pk, actor="staff:rita")
        processing.task_run(ConnectorTask.objects.get(request=request).pk)  # the last task: it runs the final step too
    return Request.objects.get(pk=request.pk)


@pytest.fixture
def hook():
    """A receiver of the erasure webhook that shares SECRET with us."""
    receiver = ErasureHook(SECRET)
    yield receiver
    receiver.stop()


@pytest.fixture
def crm(settings, tmp_path, hook):
    """The deployment's one system, `crm`, and its three recipients: Hostly GmbH told by webhook
    (`hook`), Mailbird Inc. by email, the tax office by hand."""
    crm_configure(settings, tmp_path, CRM.format(url=hook.url))
    yield
    connectors_reset()

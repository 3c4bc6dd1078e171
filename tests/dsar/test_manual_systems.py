"""Systems with no API (kind `manual`): their file, their task that waits with staff and no worker
runs, the upload or erasure that completes it as a connector's result would, and the reminder of
its assignee. Staff's pages are tested in test_console_views.py."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.utils import timezone

from connectors.registry import connectors_reset
from connectors.systems import SystemsError, system_load
from dsar import jobs, processing, services
from dsar.errors import Conflict, InvalidInput
from dsar.models import AuditEntry, ConnectorTask, Export, FinalStep, OutgoingEmail, Request
from dsar.notifications import emails_send
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_user_ensure

from ..factories import request_make

pytestmark = pytest.mark.django_db

ARCHIVE = """\
name: archive
kind: manual
instructions: Search the paper archive in room 4 by the subject's email and scan what you find.
categories: [name_contact, payment]
assignee: clerk
"""
NOTE = "Shredded the two paper forms in box 12."


@pytest.fixture
def manual_system(settings, tmp_path):
    """The deployment's systems: the probe, then `archive`, a system with no API."""
    (tmp_path / "archive.yaml").write_text(ARCHIVE)
    settings.DSAR_SYSTEMS = {"probe": settings.DSAR_SYSTEMS["probe"], "archive": system_load(tmp_path / "archive.yaml", environ={})}
    connectors_reset()
    yield
    connectors_reset()


def _approved(unique_email, type: str = "access") -> Request:
    request = request_make(status="pending_review", type=type, email=unique_email())
    services.request_approve(request_id=request.pk, actor="staff:rita")
    return request


def _task(request: Request, connector: str) -> ConnectorTask:
    return ConnectorTask.objects.get(request=request, connector=connector)


# --- The file ------------------------------------------------------------------------------------------


def test_a_manual_file_gives_a_system_with_its_instructions_categories_and_assignee(tmp_path):
    (tmp_path / "archive.yaml").write_text(ARCHIVE)
    system = system_load(tmp_path / "archive.yaml", environ={})
    assert (system.name, system.kind, system.connector_class, system.needs) == ("archive", "manual", "connectors.manual.ManualConnector", frozenset())
    assert system.options == {
        "instructions": "Search the paper archive in room 4 by the subject's email and scan what you find.",
        "categories": ["name_contact", "payment"],
        "assignee": "clerk",
    }
    assert system.connector().categories == frozenset({"name_contact", "payment"})


def test_a_manual_system_found_by_another_systems_identity_needs_it(tmp_path):
    (tmp_path / "ledger.yaml").write_text("name: ledger\nkind: manual\ninstructions: Look up the ledger.\n"
                                          "categories: [payment]\nidentities: [email, customer_number]\n")
    assert system_load(tmp_path / "ledger.yaml", environ={}).needs == frozenset({"customer_number"})


def test_a_manual_file_without_instructions_or_with_an_unknown_category_is_refused(tmp_path):
    path = tmp_path / "archive.yaml"
    path.write_text("name: archive\nkind: manual\ncategories: [name_contact, dna_sequences]\n")
    with pytest.raises(SystemsError) as error:
        system_load(path, environ={})
    assert error.value.problems == [
        f"{path}: instructions: is required",
        f"{path}: categories[1]: 'dna_sequences' is not a category of the taxonomy",
    ]


# --- The task waits with staff ----------------------------------------------------------------------------


def test_an_approved_requests_manual_task_waits_with_staff_and_no_worker_claims_it(manual_system, unique_email):
    request = _approved(unique_email)
    assert dict(ConnectorTask.objects.filter(request=request).values_list("connector", "status")) == {
        "probe": "queued", "archive": "with_staff"}
    archive = _task(request, "archive")
    assert processing.task_claim(archive.pk) is None
    processing.task_run(archive.pk)
    processing.tasks_sweep(now=timezone.now() + dt.timedelta(days=1), limit=10)
    stored = _task(request, "archive")
    assert (stored.status, stored.attempts, stored.claimed_by) == ("with_staff", 0, "")


def test_the_request_waits_for_its_manual_task_after_every_other_task_succeeded(manual_system, unique_email):
    request = _approved(unique_email)
    processing.task_run(_task(request, "probe").pk)
    assert _task(request, "probe").status == "succeeded"
    assert Request.objects.get(pk=request.pk).status == "processing"
    assert not FinalStep.objects.filter(request=request).exists()


def test_a_manual_task_found_by_another_systems_identity_waits_for_it_then_goes_to_staff_with_its_values(settings, tmp_path, unique_email):
    import sqlalchemy as sa

    from connectors.systems import systems_load
    from dsar import selectors

    email = unique_email()
    crm_db = tmp_path / "crm.sqlite3"
    with sa.create_engine(f"sqlite:///{crm_db}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE customer (id integer PRIMARY KEY, email text, customer_no text, name text)"))
        conn.execute(sa.text("INSERT INTO customer VALUES (1, :email, 'C-7', 'Ada'), (2, 'bob@example.com', 'C-8', 'Bob')"), {"email": email})
    files = tmp_path / "systems"
    files.mkdir()
    (files / "crm.yaml").write_text(f"name: crm\nkind: sql\nconnection: {{url: 'sqlite:///{crm_db}'}}\ntables:\n  - name: customer\n"
                                    "    identity: {email: email}\n    provides: {customer_number: customer_no}\n    columns: {name: name_contact}\n")
    (files / "ledger.yaml").write_text("name: ledger\nkind: manual\ninstructions: Look the customer number up in the ledger.\n"
                                       "categories: [payment]\nidentities: [customer_number]\n")
    settings.DSAR_SYSTEMS = systems_load(files, {})
    connectors_reset()
    try:
        request = _approved(lambda: email)
        assert {task.connector: task.status for task in request.tasks.all()} == {"crm": "queued", "ledger": "waiting"}
        assert list(selectors.manual_task_list()) == []

        processing.task_run(_task(request, "crm").pk)
        assert _task(request, "ledger").status == "with_staff"
        item = selectors.manual_task_get(task_id=_task(request, "ledger").pk)
        assert (item.identity.email, item.identity.ids) == (email, {"customer_number": ["C-7"]})
        assert [listed.task.pk for listed in selectors.manual_task_list()] == [_task(request, "ledger").pk]
    finally:
        connectors_reset()


# --- Completing it ----------------------------------------------------------------------------------------

CSV = b"category,name,city,card_last4\nname_contact,Ada Lovelace,London,\npayment,,,4242\n"


def test_an_uploaded_csv_completes_the_task_and_its_records_are_in_the_export(manual_system, unique_email):
    request = _approved(unique_email)
    processing.task_run(_task(request, "probe").pk)
    services.manual_task_gather(task_id=_task(request, "archive").pk, actor="staff:rita", filename="found.csv", content=CSV)

    task = _task(request, "archive")
    assert (task.status, task.counts, task.attempts) == ("succeeded", {"name_contact": 1, "payment": 1}, 1)
    assert task.output["categories"]["name_contact"]["columns"] == ["name", "city"]
    assert FinalStep.objects.get(request=request).status == "queued"
    assert list(AuditEntry.objects.filter(request=request, action="manual_task_completed").values_list("actor", "data")) == [
        ("staff:rita", {"system": "archive", "counts": {"name_contact": 1, "payment": 1}})]

    processing.final_step_run(request.pk)
    completed = Request.objects.get(pk=request.pk)
    assert completed.status == "completed"
    assert {category: count for category, count in completed.result["categories"].items() if count} == {"name_contact": 1, "payment": 1}
    with default_storage.open(Export.objects.get(request=request).path, "rb") as handle:
        archive = zipfile.ZipFile(io.BytesIO(handle.read()))
    assert [(r["connector"], r["fields"]) for r in json.loads(archive.read("data/name_contact.json"))] == [
        ("archive", {"name": "Ada Lovelace", "city": "London"})]
    assert [(r["connector"], r["fields"]) for r in json.loads(archive.read("data/payment.json"))] == [("archive", {"card_last4": "4242"})]


def test_an_uploaded_json_list_is_staged_as_its_records(manual_system, unique_email):
    request = _approved(unique_email)
    content = json.dumps([{"category": "payment", "fields": {"card_last4": "1111"}},
                          {"category": "payment", "fields": {"card_last4": "2222", "expires": "2029-01"}}]).encode()
    services.manual_task_gather(task_id=_task(request, "archive").pk, actor="staff:rita", filename="FOUND.JSON", content=content)
    task = _task(request, "archive")
    assert (task.status, task.counts) == ("succeeded", {"payment": 2})
    assert task.output["categories"]["payment"]["columns"] == ["card_last4", "expires"]
    assert not FinalStep.objects.filter(request=request).exists()  # the probe has not run yet


@pytest.mark.parametrize(("filename", "content", "code", "message"), [
    ("found.csv", b"category,name\nnonsense,Ada\n", "invalid_category", "Line 2: 'nonsense' is not a category of the taxonomy."),
    ("found.csv", b"category,name\ninterests,Ada\n", "invalid_category", "Line 2: archive does not hold 'interests'; its categories are name_contact, payment."),
    ("found.csv", b"name,category\nAda,name_contact\n", "upload_malformed", "Line 1 must be the header row: category, then one column per field."),
    ("found.csv", b"category,name,name\nname_contact,Ada,Ada\n", "upload_malformed", "Line 1: each field column needs a name of its own."),
    ("found.csv", b"category,name\nname_contact,Ada\nname_contact,Ada,London\n", "upload_malformed", "Line 3: 3 cells, but the header names 2 columns."),
    ("found.csv", b"category,name\nname_contact,\xff\n", "upload_malformed", "The file is not UTF-8 text."),
    ("found.json", b"not json", "upload_malformed", "The file is not JSON: Expecting value: line 1 column 1 (char 0)."),
    ("found.json", b'{"category": "payment", "fields": {}}', "upload_malformed", 'The file must hold a JSON list of {"category": id, "fields": {...}}.'),
    ("found.json", b'[{"category": "payment", "fields": {}}, {"category": "payment", "fields": ["1111"]}]',
     "upload_malformed", 'Item 2: must be {"category": id, "fields": {...}}.'),
    ("found.xlsx", b"category,name\n", "upload_malformed", "Upload a .csv or a .json file."),
    ("found.csv", b"category,name\n" + b"x" * (5 * 1024 * 1024), "upload_too_large", "The file is larger than 5 MB."),
])
def test_a_bad_upload_says_what_is_wrong_and_changes_nothing(manual_system, unique_email, filename, content, code, message):
    request = _approved(unique_email)
    task = _task(request, "archive")
    with pytest.raises(InvalidInput) as error:
        services.manual_task_gather(task_id=task.pk, actor="staff:rita", filename=filename, content=content)
    assert (error.value.code, error.value.detail) == (code, message)
    stored = _task(request, "archive")
    assert (stored.status, stored.attempts, stored.counts, stored.output) == ("with_staff", 0, {}, None)
    assert not AuditEntry.objects.filter(action="manual_task_completed").exists()


SCAN = b"%PDF-1.4 a scanned letter\n" + bytes(range(256))


def test_files_found_are_exported_under_the_system_with_a_record_of_their_category(manual_system, unique_email):
    request = _approved(unique_email)
    processing.task_run(_task(request, "probe").pk)
    services.manual_task_gather(task_id=_task(request, "archive").pk, actor="staff:rita", filename="found.csv", content=CSV,
                                files=[("letters/scan-1.pdf", SCAN), ("note.txt", b"Signed form, 2019.")], files_category="name_contact")

    task = _task(request, "archive")
    assert (task.status, task.counts) == ("succeeded", {"name_contact": 3, "payment": 1})
    processing.final_step_run(request.pk)
    assert Request.objects.get(pk=request.pk).status == "completed"
    with default_storage.open(Export.objects.get(request=request).path, "rb") as handle:
        archive = zipfile.ZipFile(io.BytesIO(handle.read()))
    assert archive.read("files/archive/scan-1.pdf") == SCAN
    assert archive.read("files/archive/note.txt") == b"Signed form, 2019."
    assert [r["fields"] for r in json.loads(archive.read("data/name_contact.json")) if r["connector"] == "archive"] == [
        {"name": "Ada Lovelace", "city": "London"},
        {"file": "files/archive/scan-1.pdf", "bytes": 282},
        {"file": "files/archive/note.txt", "bytes": 18},
    ]


def test_files_alone_complete_the_task(manual_system, unique_email):
    request = _approved(unique_email)
    services.manual_task_gather(task_id=_task(request, "archive").pk, actor="staff:rita", files=[("receipt.pdf", SCAN)],
                                files_category="payment")
    task = _task(request, "archive")
    assert (task.status, task.counts) == ("succeeded", {"payment": 1})
    assert list(AuditEntry.objects.filter(request=request, action="manual_task_completed").values_list("data", flat=True)) == [
        {"system": "archive", "counts": {"payment": 1}}]


@pytest.mark.parametrize(("files", "category", "code", "message"), [
    ([], None, "upload_missing", "Upload the records found, or the files found, or both."),
    ([("scan.pdf", SCAN)], None, "invalid_category", "Say which category the files are: one of name_contact, payment."),
    ([("scan.pdf", SCAN)], "interests", "invalid_category", "Say which category the files are: one of name_contact, payment."),
    ([("a/scan.pdf", SCAN), ("b/scan.pdf", b"other")], "payment", "upload_malformed", "Two files are named scan.pdf: rename one."),
    ([("", SCAN)], "payment", "upload_malformed", "A file needs a name: ''."),
    ([("big.pdf", b"x" * (5 * 1024 * 1024 + 1))], "payment", "upload_too_large", "big.pdf is larger than 5 MB."),
])
def test_bad_files_say_what_is_wrong_and_change_nothing(manual_system, unique_email, files, category, code, message):
    request = _approved(unique_email)
    with pytest.raises(InvalidInput) as error:
        services.manual_task_gather(task_id=_task(request, "archive").pk, actor="staff:rita", files=files, files_category=category)
    assert (error.value.code, error.value.detail) == (code, message)
    stored = _task(request, "archive")
    assert (stored.status, stored.attempts, stored.output) == ("with_staff", 0, None)
    assert not default_storage.exists(f"work/{request.pk}")


def test_a_task_completed_once_cannot_be_completed_again_nor_with_the_wrong_form(manual_system, unique_email):
    request = _approved(unique_email)
    task = _task(request, "archive")
    with pytest.raises(Conflict) as wrong:
        services.manual_task_erase(task_id=task.pk, actor="staff:rita", counts={"payment": 1}, note=NOTE)
    assert wrong.value.detail == "This is an access request: upload what you found instead."
    services.manual_task_gather(task_id=task.pk, actor="staff:rita", filename="found.csv", content=CSV)
    with pytest.raises(Conflict) as again:
        services.manual_task_gather(task_id=task.pk, actor="staff:ada", filename="found.csv", content=b"category,name\n")
    assert again.value.detail == "This task is not waiting for staff: it is done, or still waits for other systems."
    assert _task(request, "archive").counts == {"name_contact": 1, "payment": 1}
    assert AuditEntry.objects.filter(action="manual_task_completed").count() == 1


def test_a_deletion_confirmed_with_counts_and_a_note_completes_with_the_note_in_its_receipt(manual_system, unique_email):
    request = _approved(unique_email, type="deletion")
    processing.task_run(_task(request, "probe").pk)
    services.manual_task_erase(task_id=_task(request, "archive").pk, actor="staff:ada", counts={"name_contact": 2, "payment": 0},
                               note=NOTE)

    task = _task(request, "archive")
    assert (task.status, task.counts) == ("succeeded", {"name_contact": 2})
    assert task.receipt == {"erased": {"name_contact": 2}, "retained": [], "suppressed_sources": [], "note": NOTE}
    assert list(AuditEntry.objects.filter(request=request, action="manual_task_completed").values_list("actor", "note", "data")) == [
        ("staff:ada", NOTE, {"system": "archive", "counts": {"name_contact": 2}})]
    processing.final_step_run(request.pk)
    completed = Request.objects.get(pk=request.pk)
    assert (completed.status, completed.result) == ("completed", {"erased": {"name_contact": 2}, "retained": []})


def test_records_kept_by_hand_reach_the_persons_receipt_with_their_reason(manual_system, unique_email):
    request = _approved(unique_email, type="deletion")
    processing.task_run(_task(request, "probe").pk)
    services.manual_task_erase(task_id=_task(request, "archive").pk, actor="staff:ada", counts={"name_contact": 1},
                               kept={"payment": 2, "name_contact": 0}, kept_reason=" Paper invoices: tax law keeps them ten years ", note=NOTE)

    assert _task(request, "archive").receipt == {
        "erased": {"name_contact": 1},
        "retained": [{"category": "payment", "count": 2, "reason": "Paper invoices: tax law keeps them ten years", "until": None}],
        "suppressed_sources": [], "note": NOTE}
    processing.final_step_run(request.pk)
    assert Request.objects.get(pk=request.pk).result == {
        "erased": {"name_contact": 1},
        "retained": [{"category": "payment", "count": 2, "reason": "Paper invoices: tax law keeps them ten years", "until": None,
                      "connector": "archive"}]}


@pytest.mark.parametrize(("kept", "reason", "message"), [
    ({"payment": 1}, " ", "Say why records were kept: the person's receipt gives the reason."),
    ({"interests": 1}, "Tax law", "archive does not hold interests."),
    ({"payment": -2}, "Tax law", "A count cannot be negative: payment."),
])
def test_records_kept_without_a_reason_or_with_a_wrong_count_change_nothing(manual_system, unique_email, kept, reason, message):
    request = _approved(unique_email, type="deletion")
    with pytest.raises(InvalidInput) as error:
        services.manual_task_erase(task_id=_task(request, "archive").pk, actor="staff:ada", counts={"name_contact": 1}, note=NOTE,
                                   kept=kept, kept_reason=reason)
    assert error.value.detail == message
    assert (_task(request, "archive").status, _task(request, "archive").receipt) == ("with_staff", None)


@pytest.mark.parametrize(("counts", "note", "message"), [
    ({"name_contact": 2}, "  ", "A note is required: say what was erased and how."),
    ({"interests": 1}, NOTE, "archive does not hold interests."),
    ({"payment": -1}, NOTE, "A count cannot be negative: payment."),
])
def test_an_erasure_without_a_note_or_with_a_wrong_count_changes_nothing(manual_system, unique_email, counts, note, message):
    request = _approved(unique_email, type="deletion")
    with pytest.raises(InvalidInput) as error:
        services.manual_task_erase(task_id=_task(request, "archive").pk, actor="staff:ada", counts=counts, note=note)
    assert error.value.detail == message
    assert (_task(request, "archive").status, _task(request, "archive").receipt) == ("with_staff", None)


# --- The deadline watch ----------------------------------------------------------------------------------


def test_the_deadline_reminder_of_a_request_with_a_manual_task_goes_to_its_assignee_too(manual_system, unique_email, mailoutbox):
    for username, role in (("rev", ROLE_REVIEWER), ("adm", ROLE_ADMIN)):
        user = staff_user_ensure(username=username, role=role)
        user.email = f"{username}@example.com"
        user.save(update_fields=["email"])
    get_user_model().objects.create_user(username="clerk", email="clerk@example.com", is_staff=True)
    waiting = _approved(unique_email)
    other = request_make(status="pending_review", email=unique_email())

    jobs.deadline_watch(now=waiting.due_at - dt.timedelta(days=7) + dt.timedelta(minutes=1), limit=10)
    assert OutgoingEmail.objects.get(request=waiting, template="staff_deadline").to == ["adm@example.com", "clerk@example.com", "rev@example.com"]
    assert OutgoingEmail.objects.get(request=other).to == ["adm@example.com", "rev@example.com"]
    emails_send()
    bodies = {tuple(message.to): message.body for message in mailoutbox}
    assert "Waiting for staff to work by hand: archive (http" in bodies[("adm@example.com", "clerk@example.com", "rev@example.com")]
    assert "by hand" not in bodies[("adm@example.com", "rev@example.com")]

"""Asking the person for more information: the question and its email, the answer and the file it may
carry, what the deadline does meanwhile, the reminders, and the staff and subject APIs."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from dsar import jobs, notifications, services
from dsar.errors import Conflict, InvalidInput
from dsar.models import AuditEntry, OutgoingEmail, Request, RequestQuestion
from dsar.staff import ROLE_REVIEWER, staff_user_ensure

from ..factories import request_make

UTC = dt.UTC
TOKEN = "the-persons-bearer-token"
QUESTION = "Please send a scan of a document showing your name and the postal address on your account."
# Real files' bytes: a 1x1 PNG, a one-page PDF, the start of a JPEG (JFIF) with its end marker.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cfc0000003010100c9fe92ef"
                    "0000000049454e44ae426082")
PDF = (b"%PDF-1.4\n1 0 obj <</Type/Catalog/Pages 2 0 R>> endobj\n2 0 obj <</Type/Pages/Kids[3 0 R]/Count 1>> endobj\n"
       b"3 0 obj <</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
# What arrives disguised: a Windows executable and an HTML page with a script, under an image's or a PDF's name and type.
EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00This program cannot be run in DOS mode.\r\r\n$"
HTML = b"<!DOCTYPE html><html><script>fetch('/console/')</script></html>"


def _asked(*, purpose: str = "identity", jurisdiction: str = "gdpr", email: str = "asked@example.com") -> Request:
    """A request under review whose person holds TOKEN, asked QUESTION by the reviewer rita."""
    request = request_make(status="pending_review", email=email, token=TOKEN)
    Request.objects.filter(pk=request.pk).update(jurisdiction=jurisdiction)
    services.request_ask(request_id=request.pk, actor="staff:rita", question=QUESTION, purpose=purpose)
    return Request.objects.get(pk=request.pk)


def _actions(request: Request) -> list[str]:
    return list(AuditEntry.objects.filter(request=request).order_by("id").values_list("action", flat=True))


def _unchanged(request: Request, *, status: str, actions: list[str]) -> bool:
    """Whether the request is as it was: its status, its trail, its question unanswered and no file stored."""
    question = RequestQuestion.objects.filter(request=request).order_by("id").last()
    return (Request.objects.get(pk=request.pk).status == status and _actions(request) == actions
            and (question is None or (question.answered_at, question.answer, question.answer_file) == (None, "", ""))
            and not default_storage.exists(f"answers/{request.pk}"))


# --- Asking ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_asking_waits_for_the_person_keeps_the_question_and_emails_it_with_the_link_to_their_page(
        mailoutbox, django_capture_on_commit_callbacks):
    request = request_make(status="pending_review", email="doubtful@example.com")
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 30, tzinfo=UTC), tick=False), django_capture_on_commit_callbacks(execute=True):
        services.request_ask(request_id=request.pk, actor="staff:rita", question=QUESTION, purpose="identity")
    assert Request.objects.get(pk=request.pk).status == "awaiting_subject"
    question = RequestQuestion.objects.get(request=request)
    assert (question.purpose, question.text, question.asked_by, question.asked_at) == (
        "identity", QUESTION, "staff:rita", dt.datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    assert (question.answer, question.answered_at, question.reminders_sent) == ("", None, 0)
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.actor, entry.from_status, entry.to_status, entry.note, entry.data) == (
        "asked", "staff:rita", "pending_review", "awaiting_subject", QUESTION, {"purpose": "identity", "deadline_paused": True})
    [sent] = mailoutbox
    assert (sent.to, sent.subject) == (["doubtful@example.com"], "Example Company: We need more information about your request")
    for text in (sent.body, sent.alternatives[0][0]):
        assert QUESTION in text
        assert re.search(rf"http://127\.0\.0\.1:8000/requests/{request.pk}\?key=[\w:-]+", text)


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "question", "purpose", "refusal", "code", "detail"), [
    ("pending_review", "   ", "identity", InvalidInput, "question_required", "A question is required."),
    ("pending_review", QUESTION, "mood", InvalidInput, "invalid_purpose", "purpose must be one of identity, scope."),
    ("processing", QUESTION, "scope", Conflict, "illegal_transition", "This request is processing; it cannot be asked."),
    ("unverified", QUESTION, "identity", Conflict, "illegal_transition", "This request is unverified; it cannot be asked."),
])
def test_a_question_needs_text_and_a_known_purpose_and_is_asked_only_of_a_request_under_review(
        mailoutbox, django_capture_on_commit_callbacks, status, question, purpose, refusal, code, detail):
    request = request_make(status=status)
    with pytest.raises(refusal) as refused, django_capture_on_commit_callbacks(execute=True):
        services.request_ask(request_id=request.pk, actor="staff:rita", question=question, purpose=purpose)
    assert (refused.value.code, refused.value.detail) == (code, detail)
    assert _unchanged(request, status=status, actions=["filed"]) and not RequestQuestion.objects.exists()
    assert mailoutbox == []


@pytest.mark.django_db
def test_a_request_already_waiting_for_an_answer_is_not_asked_again_until_answered():
    request = _asked()
    with pytest.raises(Conflict) as refused:
        services.request_ask(request_id=request.pk, actor="staff:otto", question="And your date of birth?", purpose="identity")
    assert (refused.value.code, refused.value.detail) == ("illegal_transition", "This request is awaiting subject; it cannot be asked.")
    assert list(RequestQuestion.objects.filter(request=request).values_list("text", flat=True)) == [QUESTION]
    services.request_answer(request_id=request.pk, answer="Attached.", file=PDF)
    services.request_ask(request_id=request.pk, actor="staff:otto", question="Which of your two accounts do you mean?", purpose="scope")
    assert list(RequestQuestion.objects.filter(request=request).order_by("id").values_list("purpose", "answer")) == [
        ("identity", "Attached."), ("scope", "")]


# --- Answering, and what the deadline does meanwhile ---------------------------------------------------------


@pytest.mark.django_db
def test_an_identity_answer_under_the_gdpr_moves_the_due_date_later_by_the_time_the_person_took(caplog):
    request = request_make(status="pending_review", token=TOKEN)
    Request.objects.filter(pk=request.pk).update(due_at=dt.datetime(2026, 5, 1, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 4, 10, 9, tzinfo=UTC), tick=False):
        services.request_ask(request_id=request.pk, actor="staff:rita", question=QUESTION, purpose="identity")
    with time_machine.travel(dt.datetime(2026, 4, 13, 15, 30, tzinfo=UTC), tick=False):
        services.request_answer(request_id=request.pk, answer="Here is my driving licence.", file=PNG)
    stored = Request.objects.get(pk=request.pk)
    # Three days, six hours and thirty minutes waited: the deadline stood still for as long.
    assert (stored.status, stored.due_at) == ("pending_review", dt.datetime(2026, 5, 4, 18, 30, tzinfo=UTC))
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.actor, entry.from_status, entry.to_status) == ("answered", "subject", "awaiting_subject", "pending_review")
    assert entry.data == {"purpose": "identity", "due_from": "2026-05-01T12:00:00+00:00", "due_to": "2026-05-04T18:30:00+00:00"}
    question = RequestQuestion.objects.get(request=request)
    assert (question.answer, question.answered_at) == ("Here is my driving licence.", dt.datetime(2026, 4, 13, 15, 30, tzinfo=UTC))
    # What the log says of it, for whoever follows a request through the logs.
    assert f"request {request.pk}: answered, due 2026-05-04T18:30:00+00:00" in [record.getMessage() for record in caplog.records]


@pytest.mark.django_db
@pytest.mark.parametrize(("jurisdiction", "purpose"), [("gdpr", "scope"), ("ccpa", "identity"), ("ccpa", "scope")])
def test_a_scope_answer_under_the_gdpr_and_any_answer_under_the_ccpa_leave_the_due_date_where_it_was(jurisdiction, purpose):
    request = request_make(status="pending_review", token=TOKEN)
    Request.objects.filter(pk=request.pk).update(jurisdiction=jurisdiction, due_at=dt.datetime(2026, 5, 1, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 4, 10, 9, tzinfo=UTC), tick=False):
        services.request_ask(request_id=request.pk, actor="staff:rita", question=QUESTION, purpose=purpose)
    with time_machine.travel(dt.datetime(2026, 4, 20, 9, tzinfo=UTC), tick=False):
        services.request_answer(request_id=request.pk, answer="Only my orders since 2024, please.")
    assert Request.objects.get(pk=request.pk).due_at == dt.datetime(2026, 5, 1, 12, tzinfo=UTC)
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.data) == ("answered", {"purpose": purpose})  # no move of the due date to record


@pytest.mark.django_db
def test_an_empty_answer_an_answer_given_twice_and_one_to_a_request_never_asked_are_refused_and_change_nothing():
    never_asked = request_make(status="pending_review")
    with pytest.raises(Conflict) as refused:
        services.request_answer(request_id=never_asked.pk, answer="Hello?")
    assert (refused.value.code, refused.value.detail) == ("not_awaiting_answer", "This request is not waiting for an answer.")
    assert _unchanged(never_asked, status="pending_review", actions=["filed"])

    request = _asked()
    for empty in ("", "  \n "):
        with pytest.raises(InvalidInput) as refused:
            services.request_answer(request_id=request.pk, answer=empty, file=PDF)
        assert (refused.value.code, refused.value.detail) == ("answer_required", "Write your answer.")
    assert _unchanged(request, status="awaiting_subject", actions=["filed", "asked"])

    services.request_answer(request_id=request.pk, answer="My first answer.")
    with pytest.raises(Conflict) as twice:
        services.request_answer(request_id=request.pk, answer="My second answer.", file=PNG)
    assert twice.value.code == "not_awaiting_answer"
    assert _actions(request) == ["filed", "asked", "answered"]
    assert list(RequestQuestion.objects.filter(request=request).values_list("answer", "answer_file")) == [("My first answer.", "")]
    assert not default_storage.exists(f"answers/{request.pk}")


@pytest.mark.django_db
def test_a_file_of_exactly_the_size_limit_is_kept_and_one_byte_more_is_refused(settings):
    settings.DSAR_ANSWER_FILE_MAX_BYTES = 1024 * 1024
    at_limit = PDF + b"%" * (1024 * 1024 - len(PDF))
    over = _asked(email="over@example.com")
    with pytest.raises(InvalidInput) as refused:
        services.request_answer(request_id=over.pk, answer="Attached.", file=at_limit + b"%")
    assert (refused.value.code, refused.value.detail) == ("upload_too_large", "The file is larger than 1 MB.")
    assert _unchanged(over, status="awaiting_subject", actions=["filed", "asked"])
    kept = _asked(email="kept@example.com")
    services.request_answer(request_id=kept.pk, answer="Attached.", file=at_limit)
    question = RequestQuestion.objects.get(request=kept)
    with default_storage.open(question.answer_file, "rb") as stored:
        assert len(stored.read()) == 1024 * 1024


@pytest.mark.django_db
def test_the_person_may_cancel_and_staff_may_deny_while_the_answer_is_awaited_and_no_answer_is_taken_after(
        mailoutbox, django_capture_on_commit_callbacks):
    canceled = _asked(email="cancels@example.com")
    services.request_cancel(request_id=canceled.pk)
    denied = _asked(email="denied@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        services.request_deny(request_id=denied.pk, actor="staff:rita", reason="You did not send the document we asked for.")
    assert [(m.to, m.subject) for m in mailoutbox] == [(["denied@example.com"], "Example Company: About your request")]
    assert "You did not send the document we asked for." in mailoutbox[0].body
    for request, status in ((canceled, "canceled"), (denied, "denied")):
        with pytest.raises(Conflict) as refused:
            services.request_answer(request_id=request.pk, answer="Sorry I am late.", file=PNG)
        assert (refused.value.code, refused.value.detail) == ("illegal_transition", f"This request is {status}; it cannot be answered.")
        assert _unchanged(request, status=status, actions=["filed", "asked", status])


# --- The deadline watch and the queue see a request that waits for the person ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_request_awaiting_the_persons_answer_to_a_question_that_leaves_the_clock_running_stays_on_the_deadline_watch(mailoutbox):
    reviewer = staff_user_ensure(username="rev", role=ROLE_REVIEWER)
    reviewer.email = "rev@example.com"
    reviewer.save(update_fields=["email"])
    request = _asked(email="slow@example.com", purpose="scope")
    mailoutbox.clear()
    Request.objects.filter(pk=request.pk).update(due_at=dt.datetime(2026, 5, 1, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 4, 24, 13, tzinfo=UTC), tick=False):
        assert jobs.job_run("deadline_watch") == "deadline_watch: 1 reminders and escalations sent"
    assert [(m.to, m.subject) for m in mailoutbox] == [(["rev@example.com"], "Example Company: Request deadline")]


@pytest.mark.django_db(transaction=True)
def test_while_the_clock_stands_still_for_an_identity_question_the_request_is_neither_reminded_nor_found_overdue(mailoutbox, reviewer):
    staff = staff_user_ensure(username="rev", role=ROLE_REVIEWER)
    staff.email = "rev@example.com"
    staff.save(update_fields=["email"])
    request = request_make(status="pending_review", token=TOKEN, email="paused@example.com")
    Request.objects.filter(pk=request.pk).update(due_at=dt.datetime(2026, 5, 1, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 4, 28, 12, tzinfo=UTC), tick=False):
        services.request_ask(request_id=request.pk, actor="staff:rita", question=QUESTION, purpose="identity")
    mailoutbox.clear()
    with time_machine.travel(dt.datetime(2026, 5, 10, 12, tzinfo=UTC), tick=False):  # nine days past the due date it had
        assert jobs.job_run("deadline_watch") == "deadline_watch: 0 reminders and escalations sent"
        detail = reviewer.get(f"/api/v1/staff/requests/{request.pk}").json()
    assert (detail["due_at"], detail["deadline_paused_at"], detail["overdue"], detail["overdue_since"]) == (
        "2026-05-01T12:00:00Z", "2026-04-28T12:00:00Z", False, None)
    assert mailoutbox == []
    with time_machine.travel(dt.datetime(2026, 5, 11, 12, tzinfo=UTC), tick=False):  # answered thirteen days after asked
        services.request_answer(request_id=request.pk, answer="My passport, attached.", file=PNG)
    stored = Request.objects.get(pk=request.pk)
    assert (stored.due_at, stored.overdue_since) == (dt.datetime(2026, 5, 14, 12, tzinfo=UTC), None)
    with time_machine.travel(dt.datetime(2026, 5, 15, 12, tzinfo=UTC), tick=False):  # the clock ran again, and out
        assert jobs.job_run("deadline_watch") == "deadline_watch: 1 reminders and escalations sent"
    assert Request.objects.get(pk=request.pk).overdue_since == dt.datetime(2026, 5, 14, 12, tzinfo=UTC)


@pytest.mark.django_db
def test_a_request_closed_while_its_clock_stands_still_missed_no_deadline_and_its_trail_records_the_move():
    request = request_make(status="pending_review", token=TOKEN, email="withdrawn@example.com")
    Request.objects.filter(pk=request.pk).update(due_at=dt.datetime(2026, 5, 1, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 4, 30, 12, tzinfo=UTC), tick=False):
        services.request_ask(request_id=request.pk, actor="staff:rita", question=QUESTION, purpose="identity")
    with time_machine.travel(dt.datetime(2026, 5, 20, 12, tzinfo=UTC), tick=False):
        services.request_cancel(request_id=request.pk)
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.due_at, stored.overdue_since, stored.deadline_paused_at) == (
        "canceled", dt.datetime(2026, 5, 21, 12, tzinfo=UTC), None, None)
    asked, canceled = AuditEntry.objects.filter(request=request).order_by("id")[1:]
    assert (asked.action, asked.data) == ("asked", {"purpose": "identity", "deadline_paused": True})
    assert (canceled.action, canceled.data) == ("canceled", {"due_from": "2026-05-01T12:00:00+00:00", "due_to": "2026-05-21T12:00:00+00:00"})


@pytest.mark.django_db
def test_what_the_person_sent_in_answer_is_deleted_with_their_address_when_the_record_is_anonymised(django_capture_on_commit_callbacks):
    request = _asked(email="proof@example.com")
    services.request_answer(request_id=request.pk, answer="My passport, attached.", file=PNG)
    path = RequestQuestion.objects.get(request=request).answer_file
    assert default_storage.exists(path)
    services.request_deny(request_id=request.pk, actor="staff:rita", reason="The passport does not match the account.")
    Request.objects.filter(pk=request.pk).update(closed_at=dt.datetime(2024, 1, 1, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.job_run("record_retention", now=dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC)) == (
            "record_retention: 1 closed request records anonymised")
    question = RequestQuestion.objects.get(request=request)
    assert (question.text, question.answer, question.answer_file, question.answer_content_type) == (QUESTION, "", "", "")
    assert not default_storage.exists(path)


# --- Reminders --------------------------------------------------------------------------------------------------

ASKED_AT = dt.datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _remind_at(when: dt.datetime) -> str:
    with time_machine.travel(when, tick=False):
        return jobs.job_run("question_reminders")


def _asked_at(when: dt.datetime, **kwargs) -> Request:
    with time_machine.travel(when, tick=False):
        return _asked(**kwargs)


@pytest.mark.django_db(transaction=True)
def test_an_unanswered_question_is_reminded_seven_and_fourteen_days_after_it_was_asked_once_each_and_never_a_third_time(mailoutbox):
    request = _asked_at(ASKED_AT, email="quiet@example.com")
    mailoutbox.clear()
    minute = dt.timedelta(minutes=1)
    timeline = [
        (dt.datetime(2026, 3, 9, 9, 29, tzinfo=UTC), 0),
        (dt.datetime(2026, 3, 9, 9, 30, tzinfo=UTC), 1),
        (dt.datetime(2026, 3, 9, 9, 30, tzinfo=UTC) + minute, 1),  # a rerun sends nothing more
        (dt.datetime(2026, 3, 16, 9, 29, tzinfo=UTC), 1),
        (dt.datetime(2026, 3, 16, 9, 30, tzinfo=UTC), 2),
        (dt.datetime(2026, 3, 23, 9, 30, tzinfo=UTC), 2),  # at most two
        (dt.datetime(2026, 6, 1, 0, 0, tzinfo=UTC), 2),
    ]
    for when, reminders in timeline:
        _remind_at(when)
        assert (len(mailoutbox), RequestQuestion.objects.get(request=request).reminders_sent) == (reminders, reminders), when
    for sent in mailoutbox:
        assert (sent.to, sent.subject) == (["quiet@example.com"], "Example Company: We are still waiting for your answer")
        assert QUESTION in sent.body and "On 2 March 2026 we asked you a question" in sent.body
        assert f"/requests/{request.pk}?key=" in sent.body
    reminders = AuditEntry.objects.filter(request=request, action="question_reminder").order_by("id")
    assert list(reminders.values_list("actor", "note")) == [("system", "reminder 1 of 2"), ("system", "reminder 2 of 2")]


@pytest.mark.django_db(transaction=True)
def test_a_question_answered_in_time_and_one_of_a_request_closed_since_get_no_reminder(mailoutbox):
    answered = _asked_at(ASKED_AT, email="answered@example.com")
    canceled = _asked_at(ASKED_AT, email="canceled@example.com")
    with time_machine.travel(ASKED_AT + dt.timedelta(days=6), tick=False):
        services.request_answer(request_id=answered.pk, answer="Attached.", file=JPEG)
        services.request_cancel(request_id=canceled.pk)
    mailoutbox.clear()
    assert _remind_at(ASKED_AT + dt.timedelta(days=8)) == "question_reminders: 0 reminders sent"
    assert mailoutbox == []
    assert list(RequestQuestion.objects.values_list("reminders_sent", flat=True)) == [0, 0]


@pytest.mark.django_db
def test_a_reminder_queued_before_the_person_answered_is_not_sent(mailoutbox):
    request = _asked_at(ASKED_AT, email="crossed@example.com")
    _remind_at(ASKED_AT + dt.timedelta(days=7))  # in the test's transaction: queued, not yet sent
    assert list(OutgoingEmail.objects.filter(request=request).values_list("template", flat=True)) == ["question", "question_reminder"]
    services.request_answer(request_id=request.pk, answer="Sent it yesterday.")
    notifications.emails_send()
    assert [m.subject for m in mailoutbox] == ["Example Company: We need more information about your request",
                                               "Example Company: Thank you for your answer"]
    assert not OutgoingEmail.objects.exists()


# --- The staff API ------------------------------------------------------------------------------------------------


def _subject(token: str = TOKEN) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
def test_staff_ask_through_the_api_and_see_the_question_then_its_answer_in_the_request(reviewer, mailoutbox):
    request = request_make(status="pending_review", email="api@example.com", token=TOKEN)
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 30, tzinfo=UTC), tick=False):
        asked = reviewer.post(f"/api/v1/staff/requests/{request.pk}/ask", {"question": QUESTION, "purpose": "identity"}, format="json")
    assert asked.status_code == 200, asked.content
    body = asked.json()
    assert body["status"] == "awaiting_subject" and body["audit"][-1]["action"] == "asked"
    [question] = body["questions"]
    assert question == {"id": question["id"], "purpose": "identity", "text": QUESTION, "asked_by": "staff:rita",
                        "asked_at": "2026-03-02T09:30:00Z", "answer": "", "answer_content_type": "", "answered_at": None, "reminders_sent": 0}
    seen = _subject().get(f"/api/v1/requests/{request.pk}").json()
    assert (seen["status"], seen["question"]) == ("awaiting_subject", {"text": QUESTION, "purpose": "identity", "asked_at": "2026-03-02T09:30:00Z"})

    with time_machine.travel(dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC), tick=False):
        answered = _subject().post(f"/api/v1/requests/{request.pk}/answer",
                                   {"answer": "My passport, attached.", "file": SimpleUploadedFile("passport.png", PNG, content_type="image/png")},
                                   format="multipart")
    assert answered.status_code == 200, answered.content
    assert (answered.json()["status"], answered.json()["question"]) == ("pending_review", None)
    [question] = reviewer.get(f"/api/v1/staff/requests/{request.pk}").json()["questions"]
    assert (question["answer"], question["answer_content_type"], question["answered_at"]) == (
        "My passport, attached.", "image/png", "2026-03-03T08:00:00Z")
    stored = RequestQuestion.objects.get(request=request).answer_file
    assert re.fullmatch(rf"answers/{request.pk}/[0-9a-f]{{32}}\.png", stored) and "passport" not in stored
    with default_storage.open(stored, "rb") as file:
        assert file.read() == PNG


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "status", "error"), [
    ({"purpose": "identity"}, 400, "invalid"),
    ({"question": "  ", "purpose": "identity"}, 400, "invalid"),
    ({"question": QUESTION, "purpose": "mood"}, 400, "invalid"),
    ({"question": QUESTION, "purpose": "scope", "deadline": "never"}, 400, "invalid"),
    ({"question": QUESTION}, 400, "invalid"),
])
def test_an_ask_with_a_missing_or_wrong_field_is_a_400_and_changes_nothing(reviewer, mailoutbox, body, status, error):
    request = request_make(status="pending_review")
    answer = reviewer.post(f"/api/v1/staff/requests/{request.pk}/ask", body, format="json")
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert _unchanged(request, status="pending_review", actions=["filed"]) and not RequestQuestion.objects.exists()


@pytest.mark.django_db
def test_asking_a_request_not_under_review_is_a_409_and_changes_nothing(reviewer):
    request = request_make(status="processing")
    answer = reviewer.post(f"/api/v1/staff/requests/{request.pk}/ask", {"question": QUESTION, "purpose": "scope"}, format="json")
    assert answer.status_code == 409
    assert answer.json() == {"error": "illegal_transition", "detail": "This request is processing; it cannot be asked."}
    assert _unchanged(request, status="processing", actions=["filed"]) and not RequestQuestion.objects.exists()


# --- The subject API's answer ------------------------------------------------------------------------------------


def _answer(request: Request, data: dict, client: APIClient | None = None):
    return (client or _subject()).post(f"/api/v1/requests/{request.pk}/answer", data, format="multipart")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "content_type", "content"), [
    ("passport.pdf", "application/pdf", EXECUTABLE),
    ("selfie.png", "image/png", HTML),
    ("notes.txt", "text/plain", b"my date of birth is 1 April 1990"),
])
def test_a_file_that_is_not_a_pdf_png_or_jpeg_by_its_bytes_is_refused_whatever_its_name_and_declared_type(name, content_type, content):
    request = _asked()
    refused = _answer(request, {"answer": "Here you are.", "file": SimpleUploadedFile(name, content, content_type=content_type)})
    assert refused.status_code == 400
    assert refused.json() == {"error": "upload_type_refused", "detail": "Attach a PDF, PNG or JPEG file: this file is none of them."}
    assert _unchanged(request, status="awaiting_subject", actions=["filed", "asked"])


@pytest.mark.django_db
@pytest.mark.parametrize(("content", "content_type", "stored_as"), [(PDF, "application/pdf", ".pdf"), (JPEG, "image/jpeg", ".jpg")])
def test_a_pdf_or_a_jpeg_sent_under_any_name_and_declared_type_is_kept_as_what_its_bytes_say(content, content_type, stored_as):
    request = _asked()
    done = _answer(request, {"answer": "Attached.", "file": SimpleUploadedFile("scan.bin", content, content_type="application/octet-stream")})
    assert done.status_code == 200, done.content
    question = RequestQuestion.objects.get(request=request)
    assert question.answer_content_type == content_type and question.answer_file.endswith(stored_as)


@pytest.mark.django_db
def test_an_answer_needs_the_requests_own_bearer_token_and_refused_answers_change_nothing():
    request = _asked()
    other = request_make(status="pending_review", email="other@example.com", token="another-token")
    for client in (APIClient(), _subject("another-token")):
        refused = _answer(request, {"answer": "It is me."}, client)
        assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert _unchanged(request, status="awaiting_subject", actions=["filed", "asked"])
    assert _answer(other, {"answer": "Nobody asked me."}, _subject("another-token")).json() == {
        "error": "not_awaiting_answer", "detail": "This request is not waiting for an answer."}
    empty = _answer(request, {"answer": "   "})
    assert empty.status_code == 400 and set(empty.json()["detail"]) == {"answer"}
    empty_file = _answer(request, {"answer": "Attached.", "file": SimpleUploadedFile("empty.pdf", b"")})
    assert empty_file.status_code == 400 and set(empty_file.json()["detail"]) == {"file"}
    as_json = _subject().post(f"/api/v1/requests/{request.pk}/answer", {"answer": "As JSON."}, format="json")
    assert (as_json.status_code, as_json.json()["error"]) == (415, "unsupported_media_type")
    assert _unchanged(request, status="awaiting_subject", actions=["filed", "asked"])
    assert _answer(request, {"answer": "Now properly."}).status_code == 200
    twice = _answer(request, {"answer": "And again."})
    assert (twice.status_code, twice.json()["error"]) == (409, "not_awaiting_answer")
    assert RequestQuestion.objects.get(request=request).answer == "Now properly."


@pytest.mark.django_db
def test_an_answer_takes_a_file_over_the_usual_body_limit_but_a_body_over_its_own_is_a_413_read_no_further(settings):
    settings.DSAR_ANSWER_FILE_MAX_BYTES = 200 * 1024
    request = _asked()
    scan = PDF + b"%" * (150 * 1024)  # over the 64 KiB every other body is held to, under the answer's file limit
    assert _answer(request, {"answer": "Attached.", "file": SimpleUploadedFile("scan.pdf", scan)}).status_code == 200
    assert _subject().post(f"/api/v1/requests/{request.pk}/cancel", {"pad": "x" * (150 * 1024)}, format="json").status_code == 413

    again = _asked(email="again@example.com")
    too_big = PDF + b"%" * (300 * 1024)  # over the file limit and the 64 KiB allowed beside it
    refused = _answer(again, {"answer": "Attached.", "file": SimpleUploadedFile("scan.pdf", too_big)})
    assert (refused.status_code, refused.json()["error"]) == (413, "body_too_large")
    assert _unchanged(again, status="awaiting_subject", actions=["filed", "asked"])

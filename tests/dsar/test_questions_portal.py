"""Asking the person for more information, on the pages: the person's status page, where they read
the question, what their law's deadline does meanwhile, and answer it; the console's request page,
where staff ask, read the answer and download its file; the queue."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from dsar import notifications, services
from dsar.models import AuditEntry, Request, RequestQuestion
from dsar.staff import ROLE_REVIEWER

from ..factories import request_make
from .test_console_views import _signed_in
from .test_questions import EXECUTABLE, JPEG, PDF, QUESTION

pytestmark = pytest.mark.django_db

PAUSED = ("Until you answer, the time the law gives us to answer your request is paused: when you answer, your due date moves "
          "later by as long as you took.")
RUNNING = "The time the law gives us to answer your request keeps running while we wait for your answer. Please answer as soon as you can."
RUNNING_CCPA = ("The 45 days the law gives us to answer your request run from the day we received it, and keep running while we wait "
                "for your answer. Please answer as soon as you can.")


def _asked(*, purpose: str = "identity", jurisdiction: str = "gdpr", email: str = "page@example.com") -> Request:
    request = request_make(status="pending_review", email=email)
    Request.objects.filter(pk=request.pk).update(jurisdiction=jurisdiction)
    services.request_ask(request_id=request.pk, actor="staff:rita", question=QUESTION, purpose=purpose)
    return Request.objects.get(pk=request.pk)


@pytest.fixture
def person(client):
    """The person's browser, let in to a request's page by the emailed link (as the question's email carries)."""

    def open_(request: Request) -> str:
        link = urlsplit(notifications.status_url(request))
        return client.get(f"{link.path}?{link.query}", follow=True).content.decode()

    return open_


def _text(page: str) -> str:
    """The page's words with the template's line breaks and indents taken out."""
    return " ".join(page.split())


# --- The person's page -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("jurisdiction", "purpose", "said", "not_said"), [
    ("gdpr", "identity", PAUSED, RUNNING),
    ("gdpr", "scope", RUNNING, PAUSED),
    ("ccpa", "identity", RUNNING_CCPA, PAUSED),
    ("ccpa", "scope", RUNNING_CCPA, PAUSED),
])
def test_the_page_shows_the_question_the_answer_form_and_what_the_persons_law_does_to_the_deadline_meanwhile(
        person, jurisdiction, purpose, said, not_said):
    page = _text(person(_asked(purpose=purpose, jurisdiction=jurisdiction)))
    assert "We need more information from you" in page
    assert f'<blockquote class="quote">{QUESTION}</blockquote>' in page
    assert said in page and not_said not in page
    assert 'enctype="multipart/form-data"' in page and 'name="answer"' in page and 'type="file" name="file"' in page
    assert "One PDF, PNG or JPEG file of at most 10.0 MB." in page
    assert "We asked you for more information" in page and 'aria-current="step"> <span class="step-when">Now</span> <span class="step-text">Answer our question' in page
    assert "Cancel this request" in page  # the person may still withdraw it
    assert "setInterval" not in page  # no reloading under the person's hands while they type
    assert "rita" not in page


def test_the_person_answers_with_a_scan_and_the_request_goes_back_to_review(client, person):
    request = _asked()
    person(request)
    scan = SimpleUploadedFile("id card.jpg", JPEG, content_type="image/jpeg")
    response = client.post(reverse("portal:request-answer", args=[request.pk]), {"answer": "My identity card.", "file": scan}, follow=True)
    page = _text(response.content.decode())
    assert "Thank you: we have your answer. Our privacy team will now look at your request again." in page
    assert "We are checking your request" in page and "You answered our question" in page and 'name="answer"' not in page
    assert Request.objects.get(pk=request.pk).status == "pending_review"
    question = RequestQuestion.objects.get(request=request)
    assert (question.answer, question.answer_content_type) == ("My identity card.", "image/jpeg")
    with default_storage.open(question.answer_file, "rb") as stored:
        assert stored.read() == JPEG


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"answer": "Here it is.", "file": ("passport.pdf", EXECUTABLE, "application/pdf")}, "file",
     "Attach a PDF, PNG or JPEG file: this file is none of them."),
    ({"answer": ""}, "answer", "Write your answer."),
    ({"answer": "   "}, "answer", "Write your answer."),
    ({"answer": "x" * 5001}, "answer", "An answer is at most 5000 characters."),
])
def test_a_disguised_file_or_an_empty_answer_is_a_form_error_by_its_field_and_changes_nothing(client, person, data, field, message):
    request = _asked()
    person(request)
    if "file" in data:  # a new upload each run: one made at import is read to its end by the first
        name, content, content_type = data["file"]
        data = {**data, "file": SimpleUploadedFile(name, content, content_type=content_type)}
    response = client.post(reverse("portal:request-answer", args=[request.pk]), data)
    page = response.content.decode()
    assert response.status_code == 200 and "<title>Error: " in page and "There is a problem" in page
    assert f'<a href="#id_{field}">{message}</a>' in page  # in the summary, linked to its field
    assert f'<p class="field-error" id="id_{field}-error"><span class="visually-hidden">Error:</span> {message}</p>' in page
    assert Request.objects.get(pk=request.pk).status == "awaiting_subject"
    assert RequestQuestion.objects.get(request=request).answered_at is None
    assert list(AuditEntry.objects.filter(request=request).values_list("action", flat=True)) == ["filed", "asked"]
    assert not default_storage.exists(f"answers/{request.pk}")


def test_answering_needs_the_browser_let_in_to_the_request_and_a_second_answer_is_refused_with_a_message(client, person):
    request = _asked()
    url = reverse("portal:request-answer", args=[request.pk])
    assert client.post(url, {"answer": "It is me."}).status_code == 404
    assert RequestQuestion.objects.get(request=request).answered_at is None
    person(request)
    assert client.post(url, {"answer": "It is me."}).status_code == 302
    again = client.post(url, {"answer": "It is me, again."}, follow=True)
    assert "This request is not waiting for an answer." in again.content.decode()
    assert RequestQuestion.objects.get(request=request).answer == "It is me."


# --- The console ---------------------------------------------------------------------------------------------


@pytest.fixture
def staff_client():
    return _signed_in("rita", ROLE_REVIEWER, "/console/")


def test_a_reviewer_asks_from_the_request_page_then_reads_the_answer_and_downloads_its_file(staff_client, mailoutbox,
                                                                                          django_capture_on_commit_callbacks):
    request = request_make(status="pending_review", email="console@example.com")
    page = staff_client.get(reverse("console:request", args=[request.pk])).content.decode()
    assert "<legend>Ask the person</legend>" in page and "Who is asking: doubts about the person&#x27;s identity (GDPR Art. 12(6))" in page
    with django_capture_on_commit_callbacks(execute=True):
        asked = staff_client.post(reverse("console:request-ask", args=[request.pk]), {"purpose": "identity", "question": QUESTION}, follow=True)
    page = _text(asked.content.decode())
    assert "Question sent. The person has been emailed it; the request waits for their answer." in page
    assert "Questions to the person" in page and "Who is asking <span class=\"muted\">asked by staff:rita, " in page
    assert "Waiting for the answer." in page and "<legend>Ask the person</legend>" not in page
    assert [m.to for m in mailoutbox] == [["console@example.com"]]

    services.request_answer(request_id=request.pk, answer="My passport, attached.", file=PDF)
    question = RequestQuestion.objects.get(request=request)
    page = _text(staff_client.get(reverse("console:request", args=[request.pk])).content.decode())
    assert "My passport, attached." in page and "Waiting for the answer." not in page
    link = reverse("console:question-file", args=[request.pk, question.pk])
    assert f'<a href="{link}" download>Download the file they sent</a> <span class="muted">(application/pdf)</span>' in page
    download = staff_client.get(link)
    assert (download.status_code, download["Content-Type"]) == (200, "application/pdf")
    assert download["Content-Disposition"] == f'attachment; filename="answer-{request.pk}-{question.pk}.pdf"'
    assert b"".join(download.streaming_content) == PDF


def test_the_answers_file_is_for_signed_in_staff_only(client, person, staff_client):
    request = _asked()
    services.request_answer(request_id=request.pk, answer="Attached.", file=PDF)
    question = RequestQuestion.objects.get(request=request)
    link = reverse("console:question-file", args=[request.pk, question.pk])
    person(request)  # the person's own browser, let in to their request's page: still not staff
    refused = client.get(link)
    assert refused.status_code == 302 and refused["Location"].startswith("/console/login/")
    other = request_make(status="pending_review", email="other@example.com")
    assert staff_client.get(reverse("console:question-file", args=[other.pk, question.pk])).status_code == 404
    without_file = _asked(email="nofile@example.com")
    services.request_answer(request_id=without_file.pk, answer="No document needed, I think.")
    unfiled = RequestQuestion.objects.get(request=without_file)
    assert staff_client.get(reverse("console:question-file", args=[without_file.pk, unfiled.pk])).status_code == 404


def test_the_ask_form_needs_a_purpose_and_a_question_and_is_offered_only_under_review(staff_client, mailoutbox):
    request = request_make(status="pending_review")
    refused = staff_client.post(reverse("console:request-ask", args=[request.pk]), {"question": "  "})
    page = refused.content.decode()
    assert refused.status_code == 200 and "Choose what the question is about." in page and "Enter a question." in page
    assert Request.objects.get(pk=request.pk).status == "pending_review" and not RequestQuestion.objects.exists()

    processing = request_make(status="processing")
    assert "ask" not in staff_client.get(reverse("console:request", args=[processing.pk])).context["actions"]
    forged = staff_client.post(reverse("console:request-ask", args=[processing.pk]), {"purpose": "scope", "question": QUESTION}, follow=True)
    assert "This request is processing; it cannot be asked." in [str(m) for m in forged.context["messages"]]
    assert Request.objects.get(pk=processing.pk).status == "processing" and not RequestQuestion.objects.exists()
    assert mailoutbox == []


def test_while_the_answer_is_awaited_staff_may_deny_or_extend_and_the_queue_filters_such_requests(staff_client):
    waiting = _asked(email="waiting@example.com")
    request_make(status="pending_review", email="reviewing@example.com")
    assert set(staff_client.get(reverse("console:request", args=[waiting.pk])).context["actions"]) == {"deny", "extend"}
    queue = staff_client.get(reverse("console:queue"), {"status": "awaiting_subject"})
    assert [row.email for row in queue.context["page"]] == ["waiting@example.com"]
    assert '<span class="status status-awaiting_subject">Awaiting Subject</span>' in queue.content.decode()


def test_the_question_page_and_its_form_errors_in_german(client, person):
    request = _asked()
    client.cookies["django_language"] = "de"
    page = _text(person(request))
    assert '<html lang="de">' in page and "<h1>Wir brauchen weitere Angaben von Ihnen</h1>" in page
    assert ("Bevor wir mit Ihrer Anfrage weitermachen können, braucht unser Datenschutzteam weitere Angaben von Ihnen. "
            "Das ist die Frage:") in page
    assert ("Bis Sie antworten, ruht die Frist, die uns das Gesetz für die Antwort auf Ihre Anfrage gibt: Wenn Sie antworten, "
            "verschiebt sich Ihr Fälligkeitsdatum um die Zeit, die Sie gebraucht haben.") in page
    assert "Optional. Eine PDF-, PNG- oder JPEG-Datei von höchstens 10,0 MB." in page
    assert '<span class="step-when">Jetzt</span> <span class="step-text">Beantworten Sie unsere Frage' in page
    refused = _text(client.post(reverse("portal:request-answer", args=[request.pk]), {"answer": "x" * 5001}).content.decode())
    assert "<title>Fehler: Wir brauchen weitere Angaben von Ihnen" in refused
    assert '<a href="#id_answer">Eine Antwort hat höchstens 5000 Zeichen.</a>' in refused
    answered = _text(client.post(reverse("portal:request-answer", args=[request.pk]), {"answer": "Mein Ausweis."}, follow=True).content.decode())
    assert "Vielen Dank, wir haben Ihre Antwort erhalten. Unser Datenschutzteam sieht sich Ihre Anfrage jetzt noch einmal an." in answered

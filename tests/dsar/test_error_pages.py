"""Every error a person can reach is a page in the portal's look that says what to do next; API
clients keep the contract's JSON."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client, RequestFactory
from django.urls import get_resolver, reverse
from django.utils import timezone, translation

from dsar import exports, notifications
from dsar.models import Export, Request

from ..factories import request_make

# What Chromium sends when a person clicks a link.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def _portal_page(response) -> str:
    """The page, after checking it is a whole portal page: HTML, one h1, the site's header and footer."""
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert page.count("<h1>") == 1 and 'class="site-header"' in page and 'class="site-footer"' in page
    assert "<script" not in page and "style=" not in page
    return page


def test_an_unknown_address_is_a_portal_page_that_leads_on(client, db):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    page = _portal_page(response)
    assert "<h1>Page not found</h1>" in page
    assert f'href="{reverse("portal:request-new")}"' in page and "use the link in it" in page


def test_an_unknown_api_address_keeps_the_json_error(client, db):
    response = client.get("/api/v1/no-such-thing", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "No such resource."}


def test_a_host_we_do_not_serve_gets_a_400_page_and_the_api_its_json(client, db):
    response = client.get("/", HTTP_HOST="not-ours.example")
    assert response.status_code == 400
    assert "<h1>We could not read that</h1>" in _portal_page(response)
    api = client.get("/api/v1/requests", HTTP_HOST="not-ours.example")
    assert api.status_code == 400 and api.json() == {"error": "bad_request", "detail": "The request is malformed."}


def test_an_expired_form_says_to_go_back_and_send_it_again_and_files_nothing(db, mailoutbox):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(reverse("portal:request-new"), {"type": "access", "email": "late@example.com"})
    assert response.status_code == 403
    page = _portal_page(response)
    assert "<h1>This form has expired</h1>" in page and "send the form again" in page
    assert Request.objects.count() == 0 and mailoutbox == []


def test_a_server_error_is_a_page_that_needs_no_database(db, django_assert_num_queries):
    handler = get_resolver().resolve_error_handler(500)
    with django_assert_num_queries(0):
        response = handler(RequestFactory().get("/request/"))
    assert response.status_code == 500
    page = _portal_page(response)
    assert "<h1>Something went wrong on our side</h1>" in page and "try again" in page
    assert "mailto:" in page


def test_the_error_pages_speak_the_persons_language(client, db):
    german = _portal_page(client.get("/no-such-page", HTTP_ACCEPT_LANGUAGE="de"))
    assert '<html lang="de">' in german and "<h1>Seite nicht gefunden</h1>" in german
    assert "Unter dieser Adresse gibt es keine Seite. Wenn Sie sie eingetippt haben, prüfen Sie sie auf Fehler." in german
    assert f'<a href="{reverse("portal:request-new")}">Eine neue Anfrage stellen</a>' in german
    english = _portal_page(Client().get("/no-such-page"))
    assert '<html lang="en">' in english and "<h1>Page not found</h1>" in english


def test_an_expired_form_in_german_offers_the_switch_back_to_the_first_page(db):
    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="de")
    page = _portal_page(browser.post(reverse("portal:request-cancel", args=["00000000-0000-0000-0000-000000000000"])))
    assert "<h1>Dieses Formular ist abgelaufen</h1>" in page
    assert "Laden Sie die Seite neu, prüfen Sie Ihre Angaben und senden Sie das Formular noch einmal." in page
    # Not back to the address the form went to, which takes only forms.
    assert f'<input type="hidden" name="next" value="{reverse("portal:start")}">' in page


def test_a_server_error_in_german_needs_no_database_and_has_no_language_switch(db, django_assert_num_queries):
    handler = get_resolver().resolve_error_handler(500)
    with translation.override("de"), django_assert_num_queries(0):
        response = handler(RequestFactory().get("/request/"))
    page = _portal_page(response)
    assert '<html lang="de">' in page and "<h1>Bei uns ist etwas schiefgegangen</h1>" in page
    assert ('Wenn es immer wieder passiert, schreiben Sie unserem Datenschutzteam an '
            '<a href="mailto:privacy@example.com">privacy@example.com</a>.') in page
    # Rendered without the request, it has no token for the switch's form: no switch rather than one that is refused.
    assert "<form" not in page


def test_a_server_error_under_the_api_keeps_the_json_error(db):
    response = get_resolver().resolve_error_handler(500)(RequestFactory().get("/api/v1/requests"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"


def _broker_down(settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.5}}}


def test_an_outage_is_a_page_that_says_nothing_was_done_and_to_try_again(client, db, settings, mailoutbox):
    _broker_down(settings)
    response = client.post(reverse("portal:request-new"), {"type": "access", "email": "outage.page@example.com"})
    assert response.status_code == 503 and response["Retry-After"] == "30"
    page = _portal_page(response)
    assert "<h1>We cannot answer just now</h1>" in page
    assert "Nothing you sent was lost or changed: we did not act on it." in page and "Wait a minute, then try again." in page
    assert Request.objects.count() == 0 and mailoutbox == []


def test_an_outage_page_speaks_the_persons_language(client, db, settings):
    _broker_down(settings)
    page = _portal_page(client.post(reverse("portal:request-new"), {"type": "access", "email": "ausfall@example.com"},
                                    HTTP_ACCEPT_LANGUAGE="de"))
    assert '<html lang="de">' in page and "<h1>Wir können gerade nicht antworten</h1>" in page
    assert "Warten Sie eine Minute und versuchen Sie es dann noch einmal." in page


@pytest.mark.parametrize("action", ["resend", "cancel", "answer", "download-encrypted"])
def test_a_requests_form_address_opened_in_a_browser_leads_to_the_requests_page(client, db, action):
    request_id = "9b2e4f1a-0c3d-4e5f-8a7b-6c5d4e3f2a1b"
    opened = client.get(f"/requests/{request_id}/{action}", HTTP_ACCEPT=BROWSER)
    assert (opened.status_code, opened["Location"]) == (302, f"/requests/{request_id}")
    refused = client.put(f"/requests/{request_id}/{action}")
    assert (refused.status_code, refused["Allow"]) == (405, "POST")


@pytest.mark.parametrize("action", ["code", "verify"])
def test_an_export_views_form_address_opened_in_a_browser_leads_to_the_export_page(client, db, action):
    request_id = "9b2e4f1a-0c3d-4e5f-8a7b-6c5d4e3f2a1b"
    opened = client.get(f"/requests/{request_id}/export/{action}", HTTP_ACCEPT=BROWSER)
    assert (opened.status_code, opened["Location"]) == (302, f"/requests/{request_id}/export/")


# --- The download link of the "complete" email --------------------------------------------------------


def _expired_export() -> Export:
    request = request_make(status="completed", email="late.download@example.com")
    now = timezone.now()
    path = default_storage.save(f"exports/{request.pk}/test.zip", ContentFile(b"PK\x05\x06" + b"\x00" * 18))
    return Export.objects.create(request=request, path=path, bytes=22, sha256="0" * 64, created_at=now - dt.timedelta(days=8),
                                 expires_at=now - dt.timedelta(days=1), released_at=now - dt.timedelta(days=8))


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@pytest.mark.django_db(transaction=True)
def test_an_expired_download_link_in_a_browser_says_so_and_how_to_ask_again(client):
    export = _expired_export()
    response = client.get(_path(exports.download_url(export)), HTTP_ACCEPT=BROWSER, follow=True)
    assert response.status_code == 404
    page = _portal_page(response)
    assert "<h1>This download link no longer works</h1>" in page and "The link has expired" in page
    assert f'href="{reverse("portal:request-new")}"' in page
    # A browser that may not see the request is not sent to its page, which would only refuse it.
    assert f'href="{reverse("portal:request-status", args=[export.request_id])}"' not in page


@pytest.mark.django_db(transaction=True)
def test_a_damaged_download_link_offers_the_requests_page_to_the_person_who_may_see_it(client):
    export = _expired_export()
    client.get(_path(notifications.status_url(export.request)))  # the emailed link to the request's page
    url = _path(exports.download_url(export))
    for damaged in (url[:-5], url.rsplit("/", 1)[0] + "/", url.rsplit("/", 1)[0]):
        response = client.get(damaged, HTTP_ACCEPT=BROWSER, follow=True)
        assert response.status_code == 404, damaged
        page = _portal_page(response)
        assert "<h1>This download link no longer works</h1>" in page, damaged
        assert re.search(rf'<a class="button" href="{reverse("portal:request-status", args=[export.request_id])}">Go to your request</a>', page)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "application/zip"])
def test_an_expired_download_link_answers_api_clients_in_json(client, accept):
    export = _expired_export()
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client.get(_path(exports.download_url(export)), **headers)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert set(response.json()) == {"error", "detail"}

"""The person's time zone and language, as their browser gave them at filing, kept with the request:
the pages and emails they read are given in them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dsar.models import Request

pytestmark = pytest.mark.django_db


def test_the_api_keeps_the_time_zone_and_language_it_is_given(api, unique_email):
    email = unique_email("berlin")
    filed = api.post("/api/v1/requests", {"type": "access", "email": email, "time_zone": "Europe/Berlin", "language": "de"}, format="json")
    assert filed.status_code == 201
    assert Request.objects.values_list("time_zone", "language").get(pk=filed.json()["id"]) == ("Europe/Berlin", "de")


@pytest.mark.parametrize(("language", "subject", "said"), [
    ("de", "Example Company: Ihr Bestätigungscode",
     "Um Ihre Datenschutzanfrage zu bestätigen, geben Sie diesen Code auf der Seite ein, auf der Sie die Anfrage gestellt haben:"),
    ("en", "Example Company: Your verification code",
     "To confirm your privacy request, enter this code on the page where you made the request:"),
])
def test_the_code_email_is_written_in_the_language_the_request_was_filed_in(
        api, unique_email, mailoutbox, django_capture_on_commit_callbacks, language, subject, said):
    email = unique_email(f"code.{language}")
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/v1/requests", {"type": "access", "email": email, "language": language}, format="json")
    [sent] = [message for message in mailoutbox if message.to == [email]]
    assert sent.subject == subject
    assert said in sent.body and said in sent.alternatives[0][0]
    assert f'<html lang="{language}">' in sent.alternatives[0][0]


def test_left_out_they_are_utc_and_english(api, unique_email):
    filed = api.post("/api/v1/requests", {"type": "access", "email": unique_email("plain")}, format="json")
    assert Request.objects.values_list("time_zone", "language").get(pk=filed.json()["id"]) == ("UTC", "en")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("time_zone", "Mars/Olympus_Mons", "time_zone must be an IANA time zone name, such as Europe/Berlin."),
    ("time_zone", "europe/berlin", "time_zone must be an IANA time zone name, such as Europe/Berlin."),
    ("language", "fr", "language must be one of en, de."),
])
def test_an_unknown_time_zone_or_language_is_refused_and_nothing_is_filed(api, unique_email, field, value, message):
    refused = api.post("/api/v1/requests", {"type": "access", "email": unique_email("odd"), field: value}, format="json")
    assert (refused.status_code, refused.json()) == (400, {"error": "invalid", "detail": {field: [message]}})
    assert not Request.objects.exists()


def _enum(schema: dict, field: dict) -> list[str]:
    """A field's enum, where drf-spectacular may have named it once as a component."""
    while "enum" not in field:
        field = schema["components"]["schemas"][(field.get("$ref") or field["allOf"][0]["$ref"]).rsplit("/", 1)[-1]]
    return field["enum"]


def test_the_schema_lists_the_languages_and_time_zones_a_filing_takes(api):
    schema = api.get("/api/schema/?format=json").json()
    body = schema["paths"]["/api/v1/requests"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["properties"]
    assert _enum(schema, fields["language"]) == ["en", "de"]
    zones = _enum(schema, fields["time_zone"])
    assert {"Europe/Berlin", "America/New_York", "UTC"} <= set(zones)
    assert "Mars/Olympus_Mons" not in zones


def test_the_portal_form_carries_the_browsers_time_zone(client, unique_email):
    page = client.get(reverse("portal:request-new")).content.decode()
    assert '<input type="hidden" name="time_zone" id="id_time_zone">' in page
    assert '<script src="/static/dsar/time-zone.js" defer></script>' in page
    email = unique_email("york")
    client.post(reverse("portal:request-new"), {"type": "access", "email": email, "time_zone": "America/New_York"})
    assert Request.objects.values_list("time_zone", "language").get(email=email) == ("America/New_York", "en")


def test_a_deletion_keeps_the_time_zone_through_its_warning(client, unique_email):
    email = unique_email("tokyo")
    client.post(reverse("portal:request-new"), {"type": "deletion", "email": email, "time_zone": "Asia/Tokyo"})
    client.post(reverse("portal:request-confirm"), {"acknowledge": "on"})
    assert Request.objects.values_list("time_zone", flat=True).get(email=email) == "Asia/Tokyo"


def test_a_zone_the_browser_made_up_files_the_request_in_utc(client, unique_email):
    email = unique_email("nowhere")
    client.post(reverse("portal:request-new"), {"type": "access", "email": email, "time_zone": "Local/Nowhere"})
    assert Request.objects.values_list("time_zone", flat=True).get(email=email) == "UTC"

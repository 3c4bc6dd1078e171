"""An access request for the data of some days only, and its export in parts: filed through the API
and the portal, refused when it cannot be, kept on the request, shown to staff, and said in the
export's report and manifest, with the systems that could not keep to the dates."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
import time_machine
from django.core.files.storage import default_storage
from django.urls import reverse

from connectors.base import Identity, Record
from dsar import exports, services
from dsar.errors import InvalidInput
from dsar.models import ConnectorTask, Request
from estate.loader import estate_load, estate_parse

from ..factories import request_make
from ..support.flows import approve, download, file_request, subject_view, wait_until_final
from ..support.listed import listed  # noqa: F401 (a fixture)
from .test_console_views import reviewer_client  # noqa: F401 (a fixture)

TODAY = dt.date.today()


# --- Filing through the API -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_access_request_filed_with_a_period_and_a_part_size_keeps_them(api, mailoutbox):
    answer = api.post("/api/v1/requests", {"type": "access", "email": "range@example.com", "date_from": "2024-01-01",
                                           "date_to": "2024-06-30", "part_size": "2GB"}, format="json")

    assert answer.status_code == 201
    request = Request.objects.get(pk=answer.json()["id"])
    assert (request.date_from, request.date_to, request.part_size) == (dt.date(2024, 1, 1), dt.date(2024, 6, 30), 2_000_000_000)


@pytest.mark.django_db
def test_an_access_request_filed_without_them_has_all_dates_in_one_zip(api, mailoutbox):
    answer = api.post("/api/v1/requests", {"type": "access", "email": "all@example.com"}, format="json")

    request = Request.objects.get(pk=answer.json()["id"])
    assert (request.date_from, request.date_to, request.part_size) == (None, None, None)


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "code"), [
    ({"type": "access", "date_from": "2024-07-01", "date_to": "2024-06-30"}, "invalid_period"),
    ({"type": "access", "date_from": (TODAY + dt.timedelta(days=2)).isoformat()}, "period_in_future"),
    ({"type": "access", "date_to": (TODAY + dt.timedelta(days=2)).isoformat()}, "period_in_future"),
    ({"type": "deletion", "date_from": "2024-01-01"}, "period_not_allowed"),
    ({"type": "deletion", "part_size": "1GB"}, "part_size_not_allowed"),
])
def test_a_period_or_part_size_that_cannot_be_is_a_400_and_files_nothing(api, mailoutbox, body, code):
    answer = api.post("/api/v1/requests", {"email": "refused@example.com", **body}, format="json")

    assert answer.status_code == 400
    assert answer.json()["error"] == code
    assert Request.objects.count() == 0 and mailoutbox == []


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "detail"), [
    ({"part_size": "3GB"}, {"part_size": ['"3GB" is not a valid choice.']}),
    ({"date_from": "1 January 2024"}, {"date_from": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}),
])
def test_a_part_size_or_day_not_written_as_the_api_documents_is_a_400_naming_it_and_files_nothing(api, mailoutbox, body, detail):
    answer = api.post("/api/v1/requests", {"type": "access", "email": "malformed@example.com", **body}, format="json")

    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid", "detail": detail}
    assert Request.objects.count() == 0 and mailoutbox == []


@pytest.mark.django_db
def test_a_day_is_in_the_future_by_the_persons_own_calendar(mailoutbox):
    # 7 December 2026 at noon in London is already 8 December at Kiritimati (UTC+14).
    with time_machine.travel(dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC), tick=False):
        request = services.request_create(type="access", email="kiri@example.com", date_to=dt.date(2026, 12, 8),
                                          time_zone="Pacific/Kiritimati")
        with pytest.raises(InvalidInput) as refused:
            services.request_create(type="access", email="london@example.com", date_to=dt.date(2026, 12, 8), time_zone="Europe/London")

    assert request.date_to == dt.date(2026, 12, 8)
    assert refused.value.code == "period_in_future"


def test_the_api_schema_documents_the_new_fields(api):
    schema = api.get("/api/schema/?format=json").json()
    body = schema["paths"]["/api/v1/requests"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["properties"]

    assert fields["date_from"]["format"] == "date" and fields["date_to"]["format"] == "date"
    part_size = fields["part_size"]
    while "enum" not in part_size:  # drf-spectacular names an enum once, as a component
        part_size = schema["components"]["schemas"][(part_size.get("$ref") or part_size["allOf"][0]["$ref"]).rsplit("/", 1)[-1]]
    assert part_size["enum"] == ["whole", "1GB", "2GB", "4GB"]


# --- Filing through the portal --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_portal_files_an_access_request_with_a_period_and_parts(client, mailoutbox):
    answer = client.post(reverse("portal:request-new"), {"type": "access", "email": "portal-range@example.com", "date_from": "2024-02-01",
                                                          "date_to": "", "part_size": "4GB"})

    request = Request.objects.get()
    assert answer.status_code == 302
    assert (request.date_from, request.date_to, request.part_size) == (dt.date(2024, 2, 1), None, 4_000_000_000)


@pytest.mark.django_db
def test_the_form_offers_plain_date_inputs_and_the_part_sizes(client):
    page = client.get(reverse("portal:request-new")).content.decode()

    assert '<input class="input input-date" type="date" name="date_from" id="id_date_from" value="">' in page
    assert '<label for="id_date_to">To (last day)</label>' in page
    assert page.count('name="part_size"') == 4 and "Parts of at most 2 GB each" in page


@pytest.mark.django_db
@pytest.mark.parametrize(("form", "message"), [
    ({"type": "access", "date_from": "2024-07-01", "date_to": "2024-06-30"}, "The first day of the period comes after its last day."),
    ({"type": "access", "date_to": (TODAY + dt.timedelta(days=2)).isoformat()}, "A day of the period is in the future."),
    ({"type": "deletion", "date_from": "2024-01-01"}, "A deletion request covers all the data asked for: it cannot be limited to dates."),
    ({"type": "access", "date_from": "yesterday"}, "Enter the first day as a date, such as 2024-01-31."),
])
def test_the_form_shows_why_a_period_cannot_be_and_files_nothing(client, mailoutbox, form, message):
    answer = client.post(reverse("portal:request-new"), {"email": "form-range@example.com", **form})

    page = answer.content.decode()
    assert answer.status_code == 200
    assert message in page and 'id="id_date_from-error"' in page
    assert Request.objects.count() == 0 and mailoutbox == []


# --- Staff ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_see_the_period_on_the_request_page(reviewer_client):
    request = request_make(status="pending_review")
    Request.objects.filter(pk=request.pk).update(date_from=dt.date(2024, 3, 1), date_to=dt.date(2024, 3, 31), time_zone="Europe/Berlin")

    page = reviewer_client.get(reverse("console:request", args=[request.pk])).content.decode()

    assert "<dt>Only data from</dt><dd>1 Mar 2024 to 31 Mar 2024 (Europe/Berlin)" in page


# --- The export -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_report_and_manifest_give_the_period_and_the_systems_that_could_not_keep_to_it(listed):
    request = request_make(status="processing", email="ranged@example.com")
    request.categories, request.date_from, request.date_to, request.time_zone = ["interests"], dt.date(2024, 1, 1), None, "Europe/Berlin"
    request.save(update_fields=["categories", "date_from", "date_to", "time_zone"])
    connectors = listed(crm={"records": [Record("interests", {"topic": "birds"}, "crm.notes")]})
    tasks = [ConnectorTask(request=request, connector=name, output=exports.stage_gather(
        connector, Identity(email=request.email), frozenset(request.categories), request_id=request.id, attempt=1,
        period=exports.request_period(request)).as_json()) for name, connector in connectors.items()]

    archive = exports.archive_build(request, tasks)
    with default_storage.open(archive.path, "rb") as handle:
        opened = zipfile.ZipFile(io.BytesIO(handle.read()))
    manifest, report = json.loads(opened.read("manifest.json")), opened.read("index.html").decode()

    assert manifest["date_range"] == {"from": "2024-01-01", "to": None, "time_zone": "Europe/Berlin",
                                      "not_applied": [{"system": "crm", "where": ["crm"]}]}
    assert "You asked only for data from 1 January 2024 to the day we gathered it, counted in your time zone (Europe/Berlin)." in report
    assert "<li>Our crm system</li>" in report
    assert archive.categories == {"interests": 1}  # it could not tell the note's date: it is there


@pytest.mark.django_db(transaction=True)
def test_an_access_request_for_january_gathers_the_dated_rows_of_january_and_the_undated_ones_whole(api, reviewer, mailoutbox,
                                                                                                     unique_email, worker):
    email = unique_email("january")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {
        "name": "Jan Uary", "interests": ["kites"],
        "browse_history": [{"url": "https://example.com/december", "at": "2023-12-31T22:30:00+00:00"},
                           {"url": "https://example.com/new-year", "at": "2023-12-31T23:30:00+00:00"},
                           {"url": "https://example.com/march", "at": "2024-03-10T12:00:00+00:00"}]}}]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=email, date_from="2024-01-01", date_to="2024-01-31",
                                     time_zone="Europe/Berlin", categories=["interactions.browse_history", "interests"])
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"

    archive = download(api, subject_view(api, request_id, token)["download_url"])
    visited = [record["fields"]["url"] for record in json.loads(archive.read("data/interactions.browse_history.json"))]
    assert visited == ["https://example.com/new-year"]  # 00:30 on 1 January in Berlin; the others are outside it
    assert [record["fields"]["topic"] for record in json.loads(archive.read("data/interests.json"))] == ["kites"]
    not_applied = json.loads(archive.read("manifest.json"))["date_range"]["not_applied"]
    assert {"system": "accounts", "where": ["accounts.interests"]} in not_applied
    assert "<li>Our accounts system</li>" in archive.read("index.html").decode()


@pytest.mark.django_db
def test_the_forms_dates_and_part_sizes_in_german(client, mailoutbox):
    page = client.get(reverse("portal:request-new"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "<summary>Zeitraum oder Downloadgröße wählen (optional, für eine Kopie Ihrer Daten)</summary>" in page
    assert '<label for="id_date_from">Von (erster Tag)</label>' in page and '<label for="id_date_to">Bis (letzter Tag)</label>' in page
    assert '<label for="id_part_size_0">Eine Datei</label>' in page and "Teile von jeweils höchstens 2 GB" in page
    refused = client.post(reverse("portal:request-new"), {"type": "access", "email": "form-range@example.com", "date_from": "gestern"},
                          HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Geben Sie den ersten Tag als Datum ein, zum Beispiel 2024-01-31." in refused
    assert Request.objects.count() == 0 and mailoutbox == []

"""The yearly metrics of CCPA regulations §7102, through `manage.py metrics` and the console page: a
known year of requests on chosen dates, and every figure written out by hand."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dsar.models import PurgeTally, Request
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER

from ..factories import request_make
from .test_console_views import _messages, _signed_in

pytestmark = pytest.mark.django_db

# The session, the user, their roles, their second factor; then the requests' figures and the tally
# of never-verified requests deleted.
PAGE_QUERIES = 6


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _made(type: str, status: str, created: str, *, verified: str | None = None, completed: str | None = None,
          closed: str | None = None, refusals: list[dict] = ()) -> Request:
    request = request_make(type=type, status=status)
    Request.objects.filter(pk=request.pk).update(
        created_at=_at(created),
        verified_at=verified and _at(verified),
        completed_at=completed and _at(completed),
        closed_at=closed and _at(closed),
        refusals=list(refusals),
    )
    return request


@pytest.fixture
def year_2025():
    """Requests of 2025 and around it. Days to respond, in calendar days from filing, whenever the
    person verified: access 10, 14, 45 (completed) and 4 (denied); deletion 5, 8, 2 (completed) and
    30 (denied)."""
    _made("access", "completed", "2025-01-10 09:00", verified="2025-01-10 09:30", completed="2025-01-20 16:00")  # 10
    # Verified two days after filing: still 14 days from filing.
    _made("access", "completed", "2025-03-01 08:00", verified="2025-03-03 10:00", completed="2025-03-15 23:59")
    # Its export expired since, a week after completion: still counted from completion, 45.
    _made("access", "expired", "2025-06-01 12:00", verified="2025-06-01 12:05", completed="2025-07-16 09:00",
          closed="2025-07-23 09:00")
    # Filed late on 30 November, verified just after midnight, denied on 4 December: 4 calendar days.
    _made("access", "denied", "2025-11-30 23:30", verified="2025-12-01 00:10", closed="2025-12-04 08:00")
    _made("access", "canceled", "2025-02-02 10:00", closed="2025-02-03 10:00")
    _made("access", "referred", "2025-04-04 10:00", verified="2025-04-04 10:10", closed="2025-04-04 10:10")
    _made("access", "pending_review", "2025-12-31 23:59", verified="2026-01-01 00:01")
    _made("access", "failed", "2025-09-09 10:00", verified="2025-09-09 11:00")
    _made("access", "completed", "2024-12-31 23:59:59", verified="2025-01-01 00:00", completed="2025-01-05 10:00")  # 2024's
    _made("access", "completed", "2026-01-01 00:00", verified="2026-01-01 00:01", completed="2026-01-02 00:00")  # 2026's

    # Filed at 20:00, completed at 01:00 five days later: 5 calendar days, though 4 days and 5 hours passed.
    _made("deletion", "completed", "2025-05-05 20:00", verified="2025-05-05 23:00", completed="2025-05-10 01:00")
    _made("deletion", "completed", "2025-07-01 10:00", verified="2025-07-01 10:00", completed="2025-07-09 10:00")  # 8
    # Never marked verified (written before verified_at was kept): 2.
    _made("deletion", "completed", "2025-08-10 10:00", completed="2025-08-12 09:00")
    _made("deletion", "denied", "2025-10-01 10:00", verified="2025-10-01 11:00", closed="2025-10-31 12:00")  # 30
    _made("deletion", "unverified", "2025-12-28 10:00")
    _made("deletion", "canceled", "2025-03-03 10:00", verified="2025-03-03 10:05", closed="2025-03-04 10:00")

    # Never-verified requests deleted, counted by the day they were deleted: 2 + 3 in 2025.
    PurgeTally.objects.create(day=dt.date(2024, 12, 30), count=1)
    PurgeTally.objects.create(day=dt.date(2025, 1, 5), count=2)
    PurgeTally.objects.create(day=dt.date(2025, 8, 1), count=3)
    PurgeTally.objects.create(day=dt.date(2026, 1, 2), count=7)


# Worked out by hand from the fixture. Access: 3 complied, answered in 4, 10, 14, 45 days: median
# (10 + 14) / 2 = 12.0, mean 73 / 4 = 18.25, shown 18.3 (half up). Deletion: 2, 5, 8, 30: median
# (5 + 8) / 2 = 6.5, mean 45 / 4 = 11.25, shown 11.3. All: 2, 4, 5, 8, 10, 14, 30, 45: median
# (8 + 10) / 2 = 9.0, mean 118 / 8 = 14.75, shown 14.8; received 8 + 6 + the 5 never verified.
EXPECTED_2025 = {
    "year": 2025,
    "access": {"received": 8, "complied_in_whole": 3, "complied_in_part": 0, "denied": 1, "never_verified": None, "canceled": 1,
               "referred": 1, "still_open": 2, "responded": 4, "median_days": 12.0, "mean_days": 18.3},
    "deletion": {"received": 6, "complied_in_whole": 3, "complied_in_part": 0, "denied": 1, "never_verified": None, "canceled": 1,
                 "referred": 0, "still_open": 1, "responded": 4, "median_days": 6.5, "mean_days": 11.3},
    "all": {"received": 19, "complied_in_whole": 6, "complied_in_part": 0, "denied": 2, "never_verified": 5, "canceled": 2,
            "referred": 1, "still_open": 3, "responded": 8, "median_days": 9.0, "mean_days": 14.8},
}

# The same, as the table's rows: figure, access, deletion, all types.
EXPECTED_ROWS_2025 = [
    ["Received", "8", "6", "19"],
    ["Complied with in whole", "3", "3", "6"],
    ["Complied with in part", "0", "0", "0"],
    ["Denied", "1", "1", "2"],
    ["Closed: never verified (not a denial)", "", "", "5"],
    ["Closed: canceled by the person (not a denial)", "1", "1", "2"],
    ["Closed: referred to the managing organisation (not a denial)", "1", "0", "1"],
    ["Still open", "2", "1", "3"],
    ["Responded to: completed or denied", "4", "4", "8"],
    ["Days to respond, median", "12.0", "6.5", "9.0"],
    ["Days to respond, mean", "18.3", "11.3", "14.8"],
]


def _metrics(*args: str) -> str:
    out = io.StringIO()
    call_command("metrics", *args, stdout=out)
    return out.getvalue()


# --- The command -----------------------------------------------------------------------------------------


def test_the_command_prints_the_years_figures_as_json(year_2025):
    assert json.loads(_metrics("--year", "2025", "--json")) == EXPECTED_2025


def test_the_command_prints_a_plain_table_by_default(year_2025):
    lines = _metrics("--year", "2025").splitlines()
    assert lines[0] == "Requests received in 2025 (UTC), CCPA regulations §7102"
    assert lines[1].split() == ["access", "deletion", "all"]
    rows = {}
    for line in lines[2:]:
        label = next(row[0] for row in EXPECTED_ROWS_2025 if line.startswith(row[0] + " "))
        rows[label] = line[len(label):].split()
    assert rows == {label: [value for value in values if value] for label, *values in EXPECTED_ROWS_2025}


def test_years_and_days_are_utcs_whatever_the_deployments_time_zone(year_2025, settings):
    # In Los Angeles 2026's first request was filed in 2025, and the denial above took 4 days.
    settings.TIME_ZONE = "America/Los_Angeles"
    assert json.loads(_metrics("--year", "2025", "--json")) == EXPECTED_2025


def test_a_year_with_no_request_counts_zeros_and_no_days():
    figures = json.loads(_metrics("--year", "2019", "--json"))
    assert figures["access"] == {"received": 0, "complied_in_whole": 0, "complied_in_part": 0, "denied": 0,
                                 "never_verified": None, "canceled": 0, "referred": 0, "still_open": 0, "responded": 0,
                                 "median_days": None, "mean_days": None}
    assert figures["all"]["never_verified"] == 0


def test_a_request_completed_with_parts_of_it_refused_counts_as_complied_with_in_part_not_in_whole():
    searches = [{"category": "searches_commands", "reason": "Shared with the family account."}]
    payments = [{"system": "payments", "reason": "Held for a fraud investigation."}]
    _made("access", "completed", "2024-02-01 10:00", completed="2024-02-11 10:00", refusals=searches)  # 10 days
    _made("access", "completed", "2024-03-01 10:00", completed="2024-03-05 10:00")  # 4 days, whole
    _made("access", "expired", "2024-04-01 10:00", completed="2024-04-07 10:00", closed="2024-04-14 10:00",
          refusals=payments)  # 6 days
    _made("deletion", "completed", "2024-05-01 10:00", completed="2024-05-03 10:00", refusals=[*searches, *payments])  # 2
    _made("deletion", "denied", "2024-06-01 10:00", closed="2024-06-09 10:00")  # 8, denied whole
    _made("deletion", "processing", "2024-07-01 10:00", refusals=payments)  # refused in part, not yet answered
    figures = json.loads(_metrics("--year", "2024", "--json"))
    assert {scope: (figures[scope]["complied_in_whole"], figures[scope]["complied_in_part"], figures[scope]["denied"],
                    figures[scope]["responded"], figures[scope]["still_open"]) for scope in ("access", "deletion", "all")} == {
        "access": (1, 2, 0, 3, 0), "deletion": (0, 1, 1, 2, 1), "all": (1, 3, 1, 5, 1)}
    # Answered in part or whole, its days count alike: 2, 4, 6, 8, 10.
    assert (figures["all"]["median_days"], figures["all"]["mean_days"]) == (6.0, 6.0)


@pytest.mark.parametrize("args", [(), ("--year", "twenty"), ("--year", "2017"), ("--year", str(timezone.now().year + 1))])
def test_a_missing_or_unknown_year_is_a_command_line_error_naming_the_argument(args):
    with pytest.raises(CommandError, match="--year"):
        _metrics(*args)


# --- The console page --------------------------------------------------------------------------------------


def _table(content: str) -> list[list[str]]:
    """The figures table's body rows, as text: figure, then each type's value."""
    body = content.split("<table>", 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body)]


@pytest.mark.parametrize("role", [ROLE_REVIEWER, ROLE_ADMIN])
def test_reviewers_and_admins_see_the_years_figures(year_2025, role):
    client = _signed_in("metrics-reader", role, "/console/")
    response = client.get(reverse("console:metrics"), {"year": "2025"})
    assert response.status_code == 200
    expected = [[label, *(value or "–" for value in values)] for label, *values in EXPECTED_ROWS_2025]
    assert _table(response.content.decode()) == expected
    assert ("<strong>Complied with in part</strong>: completed, with some kinds of data or some systems of it refused at "
            "approval, each with a reason the person was emailed.") in response.content.decode()


def test_the_page_shows_last_calendar_year_unless_one_is_chosen():
    client = _signed_in("rita", ROLE_REVIEWER, "/console/")
    last_year = timezone.now().year - 1
    response = client.get(reverse("console:metrics"))
    assert response.status_code == 200
    assert f"Requests received in {last_year}</caption>" in response.content.decode()
    assert f'<option value="{last_year}" selected>' in response.content.decode()
    assert ("<strong>Days to respond</strong>: calendar days (UTC) from filing to the completion or the denial (the law's "
            "clock runs from receipt, whatever verification takes)") in response.content.decode()


@pytest.mark.parametrize("year", ["twenty", "2017", "99999999999999999999", str(timezone.now().year + 1)])
def test_a_bad_year_gives_a_message_and_no_figures(year):
    client = _signed_in("rita", ROLE_REVIEWER, "/console/")
    response = client.get(reverse("console:metrics"), {"year": year})
    assert response.status_code == 200
    assert _messages(response) == [f"Choose a year from 2018 to {timezone.now().year}."]
    assert "<table>" not in response.content.decode()


def test_the_table_downloads_as_csv(year_2025):
    client = _signed_in("rita", ROLE_REVIEWER, "/console/")
    response = client.get(reverse("console:metrics"), {"year": "2025", "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="dsar-metrics-2025.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [["figure", "access", "deletion", "all"], *EXPECTED_ROWS_2025]


def test_a_signed_out_visitor_is_sent_to_sign_in():
    for query in ({"year": "2025"}, {"year": "2025", "format": "csv"}):
        response = Client().get(reverse("console:metrics"), query)
        assert response.status_code == 302 and response["Location"].startswith("/console/login/?next="), query


def test_the_navigation_links_to_the_page():
    client = _signed_in("rita", ROLE_REVIEWER, "/console/")
    assert f'href="{reverse("console:metrics")}"' in client.get(reverse("console:dashboard")).content.decode()


def test_the_page_takes_a_fixed_number_of_queries_however_many_requests(year_2025, django_assert_max_num_queries):
    for number in range(30):
        _made("access" if number % 2 else "deletion", "completed", f"2025-02-{number % 28 + 1:02d} 10:00",
              verified=f"2025-02-{number % 28 + 1:02d} 10:00", completed="2025-03-01 10:00")
    client = _signed_in("rita", ROLE_REVIEWER, "/console/")
    with django_assert_max_num_queries(PAGE_QUERIES):
        response = client.get(reverse("console:metrics"), {"year": "2025"})
    assert _table(response.content.decode())[0] == ["Received", "23", "21", "49"]

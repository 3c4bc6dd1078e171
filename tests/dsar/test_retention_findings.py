"""Retention honesty (GDPR Art. 5(1)(e)): an access request whose export shows data kept past the
retention its category promises records what, where, how old and which promise; staff see it on the
request page (before releasing the export), the dashboard and the staff API; the export shows the
data as it is and its report says so. The taxonomy's numbers are checked when it is read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.urls import reverse

from connectors.taxonomy import TaxonomyError, taxonomy_load
from dsar import processing
from dsar.models import Export, Request
from estate.loader import estate_load, estate_parse

from ..factories import request_make
from ..support.flows import approve, download, file_request, release_as_it_is, subject_view, wait_until_final
from .test_console_views import _signed_in

ROOT = Path(__file__).resolve().parents[2]
NOTE = "Some of this data is older than we say above that we keep it. We show it to you as we hold it, and we have told our privacy team."

# Alice (estate/demo.json) keeps two things on purpose past their promise: a 2014 invoice whose
# retention rule kept it until 2024, and a clip from a store's security camera stored in October 2026.
ALICES_FINDING = [
    {"system": "payments.transactions", "category": "interactions.account_history", "reason": "past_retention_date",
     "records": 1, "files": 0, "oldest_collected_at": "2014-03-01T12:00:00+00:00", "retained_until": "2024-03-01T12:00:00+00:00",
     "retention_days": None,
     "retention": "While your account is open, then 2 years; records that appear on invoices are kept for 10 years because tax law requires it"},
    {"system": "content", "category": "video_recordings", "reason": "older_than_promised",
     "records": 1, "files": 1, "oldest_collected_at": "2026-10-02T18:00:00+00:00", "retained_until": None,
     "retention_days": 30, "retention": "30 days, for security camera footage and event recordings alike"},
]


def _demo_subject(demo_email: str, email: str) -> dict:
    """A subject of the demo estate under a new address."""
    subjects = json.loads((ROOT / "estate" / "demo.json").read_text())["subjects"]
    return {**next(subject for subject in subjects if subject["email"] == demo_email), "email": email}


def _access(api, reviewer, mailoutbox, subject: dict):
    estate_load(estate_parse({"subjects": [subject]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=subject["email"])
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    if Export.objects.get(request_id=request_id).others:
        release_as_it_is(reviewer, request_id)  # Alice's contacts, shared ticket, CCTV and voice wait for review
    return request_id, download(api, subject_view(api, request_id, token)["download_url"])


def _sections_with_the_note(archive) -> set[str]:
    """The report's category sections (by anchor) that say some of their data is older than promised."""
    report = archive.read("index.html").decode()
    return {section.split('"', 1)[0] for section in report.split('<section id="cat-')[1:] if NOTE in section}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_an_export_showing_data_kept_past_its_promise_records_what_where_how_old_and_which_promise(api, reviewer, mailoutbox,
                                                                                                   unique_email):
    request_id, archive = _access(api, reviewer, mailoutbox, _demo_subject("alice@example.com", unique_email("kept")))

    detail = reviewer.get(f"/api/v1/staff/requests/{request_id}")
    assert detail.status_code == 200
    assert detail.json()["retention_finding"] == ALICES_FINDING

    # Nothing is hidden or changed: the export shows both as they are held, and its report says so where they are.
    [clip] = json.loads(archive.read("data/video_recordings.json"))
    assert (clip["fields"]["file"], clip["collected_at"]) == ("files/content/Store visit/cctv-2026-10-02.mp4", "2026-10-02T18:00:00+00:00")
    assert len(archive.read("files/content/Store visit/cctv-2026-10-02.mp4")) == 8192
    [invoice] = [r for r in json.loads(archive.read("data/interactions.account_history.json")) if r["fields"].get("item") == "Office 2014"]
    assert invoice["fields"]["retained_until"] == "2024-03-01T12:00:00+00:00"
    assert _sections_with_the_note(archive) == {"interactionsaccount_history", "video_recordings"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_the_dashboard_counts_a_request_with_a_finding_and_links_to_it_in_the_queue(api, reviewer, mailoutbox, unique_email):
    request_id, _ = _access(api, reviewer, mailoutbox, _demo_subject("alice@example.com", unique_email("counted")))
    console = _signed_in("rita", "reviewer", "/console/")

    dashboard = console.get(reverse("console:dashboard")).content.decode()
    assert ('<span class="figure-value"><span aria-hidden="true">⚠ </span>1</span> <span class="figure-label">completed in the last '
            "30 days with data kept longer than promised</span>") in dashboard
    link = re.search(r'<a href="([^"]+)">Show the requests with data kept longer than promised</a>', dashboard)
    assert link and link.group(1) == "/console/?retention=yes&amp;sort=-created"
    queue = console.get("/console/?retention=yes&sort=-created")
    assert [str(row.pk) for row in queue.context["page"]] == [request_id]
    # Once released, the request page still shows the finding.
    page = console.get(reverse("console:request", args=[request_id])).content.decode()
    assert "Kept longer than promised" in page and "<code>payments.transactions</code>" in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_an_export_whose_data_keeps_its_promises_has_no_finding_and_no_note(api, reviewer, mailoutbox, unique_email):
    request_id, archive = _access(api, reviewer, mailoutbox, _demo_subject("bob@example.com", unique_email("kept-promise")))

    assert reviewer.get(f"/api/v1/staff/requests/{request_id}").json()["retention_finding"] is None
    assert json.loads(archive.read("manifest.json"))["categories"]["feedback_ratings"]["records"] == 1
    assert _sections_with_the_note(archive) == set()
    console = _signed_in("rita", "reviewer", "/console/")
    dashboard = console.get(reverse("console:dashboard")).content.decode()
    assert ('<span class="figure-value">0</span> <span class="figure-label">completed in the last 30 days with data kept longer '
            "than promised</span></li>") in dashboard
    assert console.get("/console/?retention=yes").context["page"].paginator.count == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_rows_past_their_promise_are_all_counted_however_many_a_table_holds(api, reviewer, mailoutbox, unique_email):
    # Past the first thousand rows the accounts system's pages visited are written by PostgreSQL
    # (connectors/sql_rendered.py): those are counted too.
    visits = [{"url": "https://example.com/recent", "at": "1 day ago"}] * 3
    visits += [{"url": f"https://example.com/{n}", "at": f"2026-01-01T{n // 60 % 24:02d}:{n % 60:02d}:00Z"} for n in range(1200)]
    email = unique_email("visits")
    request_id, archive = _access(api, reviewer, mailoutbox, {"email": email, "accounts": {"browse_history": visits}})

    assert json.loads(archive.read("manifest.json"))["categories"]["interactions.browse_history"]["records"] == 1203
    assert reviewer.get(f"/api/v1/staff/requests/{request_id}").json()["retention_finding"] == [
        {"system": "accounts.browse_history", "category": "interactions.browse_history", "reason": "older_than_promised",
         "records": 1200, "files": 0, "oldest_collected_at": "2026-01-01T00:00:00+00:00", "retained_until": None,
         "retention_days": 90, "retention": "Until you clear it, and at most 90 days"},
    ]


@pytest.mark.django_db
def test_staff_see_the_finding_on_the_request_page_before_they_release_the_export(settings, unique_email):
    """Run in this process, whose settings hold the export for review (the tests' worker releases each export)."""
    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    subject = _demo_subject("alice@example.com", unique_email("review"))
    estate_load(estate_parse({"subjects": [subject]}))
    request = request_make(status="processing", email=subject["email"])
    processing.tasks_create(request)
    for task in request.tasks.all():
        processing.task_run(task.pk)
    processing.final_step_run(request.pk)  # what the doorbell the last task rang would run (none rings here: nothing commits)
    assert Request.objects.get(pk=request.pk).status == "completed"
    assert Export.objects.get(request=request).released_at is None

    page = _signed_in("rita", "reviewer", "/console/").get(reverse("console:request", args=[request.pk]))
    assert page.context["can_review"]  # her export holds others' data too: reviewed, then released
    content = page.content.decode()
    finding = content[content.index('<h2 id="retention-heading">'):content.index("</table>", content.index('<h2 id="retention-heading">'))]
    invoice, clip = finding.split("<tr>")[2:]
    for shown in ('<th scope="row">Purchases and account activity <code class="muted">interactions.account_history</code></th>',
                  "<td><code>payments.transactions</code></td>", '<td class="num">1</td>',
                  '<time datetime="2014-03-01T12:00:00+00:00">1 Mar 2014</time>',
                  'Kept by a retention rule until <time datetime="2024-03-01T12:00:00+00:00">1 Mar 2024</time>, which has passed'):
        assert shown in invoice, shown
    for shown in ('<th scope="row">Video recordings at our places and events <code class="muted">video_recordings</code></th>',
                  "<td><code>content</code></td>", '<td class="num">1 (1 stored file)</td>',
                  '<time datetime="2026-10-02T18:00:00+00:00">2 Oct 2026</time>',
                  "At most 30 days after it was collected. The category says: “30 days, for security camera footage and event "
                  "recordings alike”"):
        assert shown in clip, shown


BAD_RETENTION_DAYS = [(0, "0"), (-30, "-30"), ("30", "'30'"), (30.5, "30.5"), (True, "True"), (None, "None")]


@pytest.mark.parametrize(("days", "shown"), BAD_RETENTION_DAYS, ids=[shown for _, shown in BAD_RETENTION_DAYS])
def test_a_taxonomy_whose_retention_days_is_not_a_whole_number_of_days_above_zero_is_refused(tmp_path, days, shown):
    file = tmp_path / "taxonomy.yaml"
    file.write_text(yaml.safe_dump({"categories": {"video_recordings": {"retention": "30 days", "retention_days": days}}}))
    with pytest.raises(TaxonomyError) as refused:
        taxonomy_load(file)
    assert str(refused.value) == f"{file}: categories.video_recordings.retention_days: must be a whole number of days above 0, not {shown}"


def test_a_taxonomy_may_give_a_categorys_retention_in_days_or_leave_it_out(tmp_path):
    file = tmp_path / "taxonomy.yaml"
    file.write_text("categories:\n  video_recordings: {retention: '30 days', retention_days: 30}\n  content: {retention: 'Until you delete it'}\n")
    categories = taxonomy_load(file)["categories"]
    assert (categories["video_recordings"]["retention_days"], "retention_days" in categories["content"]) == (30, False)


def test_the_demo_taxonomy_gives_in_days_exactly_the_fixed_ages_its_wording_promises():
    categories = taxonomy_load(ROOT / "dsar" / "taxonomy.yaml")["categories"]
    pairs = {category: (info["retention"], info["retention_days"]) for category, info in categories.items() if "retention_days" in info}
    assert pairs == {
        "interactions.device_usage": ("18 months", 548),
        "interactions.browse_history": ("Until you clear it, and at most 90 days", 90),
        "interactions.error_reports": ("90 days", 90),
        "interactions.bot_usage": ("90 days, or until you unlink the add-on", 90),
        "interests": ("Until you remove them or turn off personalisation, and at most 2 years", 730),
        "searches_commands": ("Until you delete them, and at most 18 months", 548),
        "voice": ("Until you delete them, and at most 18 months", 548),
        "text_inking_typing": ("Until you turn the feature off, and at most 12 months", 365),
        "location": ("Exact location: 30 days. Rough location: 12 months", 365),  # the longer: rough locations may be that old
        "other_input": ("Until you turn the feature off, and at most 12 months", 365),
        "video_recordings": ("30 days, for security camera footage and event recordings alike", 30),
        "feedback_ratings": ("3 years, or until you remove a published review", 1095),
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_an_archive_written_again_after_its_review_still_says_where_data_is_older_than_promised(api, reviewer, mailoutbox,
                                                                                                 unique_email):
    subject = _demo_subject("alice@example.com", unique_email("reviewed"))
    estate_load(estate_parse({"subjects": [subject]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=subject["email"])
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    items = reviewer.get(f"/api/v1/staff/requests/{request_id}/review").json()["items"]
    # A voice recording, stored beside the old CCTV clip: its store's staged data is written again.
    [voice] = [item for item in items if item["category"] == "voice"]
    decisions = [{"item": item["id"], "action": "release"} for item in items if item is not voice]
    decisions.append({"item": voice["id"], "action": "withhold", "reason": "others_personal_data"})
    assert reviewer.post(f"/api/v1/staff/requests/{request_id}/review", {"decisions": decisions}, format="json").status_code == 200
    archive = download(api, subject_view(api, request_id, token)["download_url"])
    assert _sections_with_the_note(archive) == {"interactionsaccount_history", "video_recordings"}

"""What an access answer tells beside the records (GDPR Art. 15, and under the CCPA its statutory
categories): the export the real worker builds for the demo's richest subject, its report read as the
person reads it and its manifest as a script does."""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile
from zoneinfo import ZoneInfo

import pytest

from connectors.base import OBSERVED
from dsar.exports.report import report_category, report_render
from estate.loader import estate_load, estate_parse

from ...factories import request_make
from ...support.flows import approve, download, file_request, release_as_it_is, subject_view, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

NIMBUS = ("<li><strong>Nimbus Hosting GmbH</strong>, Germany (<code>DE</code>). It handles the data for us, only as we instruct. "
          "This is in the European Economic Area, where the same data protection law applies.</li>")
SCC = ("This is outside the European Economic Area, so we signed the European Commission's standard contractual clauses with "
       "them: a contract that binds them to protect your data as EU law does.")
NO_DECISIONS = ("<h3>Decisions by computer and profiling</h3> <p>We do not use this data to make decisions about you by computer "
                "alone, and we do not use it to profile you.</p>")
PROFILING = "<p>We use this data for profiling: a computer looks at it to predict what you like or how you behave.</p>"


@pytest.fixture
def export_of(api, reviewer, mailoutbox, unique_email, settings, worker):
    """A function that files an access request for the demo's Alice, under a new address and the
    given law, has it approved and run by the worker, and returns the downloaded archive."""
    def export(jurisdiction: str, **filed) -> zipfile.ZipFile:
        settings.DSAR_JURISDICTION = jurisdiction  # the law a request is filed under is kept with it
        alice = json.loads(open("estate/demo.json").read())["subjects"][0]
        alice["email"] = unique_email("art15")
        estate_load(estate_parse({"subjects": [alice]}))
        request_id, token = file_request(api, mailoutbox, type="access", email=alice["email"], **filed)
        approve(reviewer, request_id)
        assert wait_until_final(request_id).status == "completed"
        release_as_it_is(reviewer, request_id)  # Alice's contacts, shared ticket, CCTV and voice wait for review
        return download(api, subject_view(api, request_id, token)["download_url"])

    return export


def _page(archive: zipfile.ZipFile) -> str:
    """index.html with each run of white space made one space, as a reader sees it."""
    return " ".join(archive.read("index.html").decode().split())


def _part(page: str, start: str) -> str:
    """The page from `start` to the end of the section it is in."""
    begin = page.index(start)
    return page[begin:page.index("</section>", begin)]


def _category(page: str, slug: str) -> str:
    return _part(page, f'<section id="cat-{slug}"')


def test_the_report_names_who_receives_each_category_with_role_country_and_the_safeguard_of_a_transfer(export_of):
    page = _page(export_of("gdpr"))

    contact = _category(page, "name_contact")
    assert ("<h3>The organisations that receive it</h3> <ul> " + NIMBUS + " <li><strong>Postwave Inc.</strong>, United States "
            "(<code>US</code>). It handles the data for us, only as we instruct. " + SCC + " In detail: The European Commission&#39;s "
            "2021 clauses for controllers and processors (module 2).</li> </ul>") in contact
    # Hosted by one provider in two systems (accounts and payments), named once.
    history = _category(page, "interactionsaccount_history")
    assert history.count("Nimbus Hosting GmbH") == 1
    assert ("<li><strong>Paylane Payments Ltd</strong>, Ireland (<code>IE</code>). It handles the data for us, only as we instruct. "
            "This is in the European Economic Area, where the same data protection law applies.</li>") in history
    assert ("<li><strong>Finanzamt Musterstadt (tax office)</strong>, Germany (<code>DE</code>). A public authority, which receives "
            "the data when the law requires it.") in _category(page, "payment")
    assert ("<li><strong>Waypoint Location Ltd</strong>, Israel (<code>IL</code>). It handles the data for us, only as we instruct. "
            "The European Commission has decided that the law there protects personal data as well as EU law does (an adequacy "
            "decision).</li>") in _category(page, "location")
    assert ("<li><strong>Vocalis Speech Inc.</strong>, United States (<code>US</code>). It handles the data for us, only as we "
            "instruct. This is outside the European Economic Area; their group of companies is bound by rules a data protection "
            "authority approved (binding corporate rules), which protect your data as EU law does. In detail: The Vocalis "
            "group&#39;s binding corporate rules for processors, approved by the Irish Data Protection Commission.</li>"
            ) in _category(page, "voice")
    assert ("<li><strong>Botanic Skills Pte. Ltd.</strong>, Singapore (<code>SG</code>). It uses the data for its own purposes, "
            "under its own responsibility. This is outside the European Economic Area and no general safeguard covers it: we send "
            "your data there only in a situation where the law allows it as an exception (GDPR Article 49). In detail: You asked "
            "us to pass your words to the add-on you chose (GDPR Art. 49(1)(b)).</li>") in _category(page, "interactionsbot_usage")
    assert ("<li><strong>Brightreach Ads Inc.</strong>, United States (<code>US</code>). It uses the data for its own purposes, "
            "under its own responsibility. " + SCC) in _category(page, "interests")
    # The systems holding searches declare only their host.
    assert "<ul> " + NIMBUS + " </ul>" in _category(page, "searches_commands")


def test_the_report_says_per_category_whether_a_computer_decides_or_profiles_with_it_how_and_what_it_means(export_of):
    page = _page(export_of("gdpr"))

    assert (PROFILING + " <p><strong>How it works:</strong> We count the topics of what you search for, read and watch. A topic "
            "that keeps coming up is added to your interests as one we guessed; this export marks those as worked out by us.</p> "
            "<p><strong>What it means for you:</strong> It decides which news, suggestions and, if you allow it, adverts you see "
            "first. It does not change prices or what you may buy. Turn personalisation off and we stop, and delete the interests "
            "we guessed.</p>") in _category(page, "interests")
    payment = _category(page, "payment")
    assert PROFILING in payment
    assert ("<p><strong>What it means for you:</strong> A payment with a high score is held until one of our staff has looked at "
            "it; a computer never refuses it alone. If we hold a payment we tell you, and you can ask us to look at it again.</p>"
            ) in payment
    assert "we compare the device, the network address and the time with your earlier sign-ins" in _category(
        page, "interactionsaccount_history")
    for slug in ("name_contact", "searches_commands", "location", "content"):
        assert NO_DECISIONS in _category(page, slug), slug


def test_the_report_lists_the_persons_rights_with_where_to_use_each_and_names_the_supervisory_authority(export_of):
    page = _page(export_of("gdpr"))

    rights = _part(page, '<section aria-labelledby="rights">')
    portal = '<a href="http://testserver/request/">http://testserver/request/</a>.'
    contact = '<a href="mailto:privacy@example.com">privacy@example.com</a>.'
    terms = re.findall(r"<dt>(.*?)</dt> <dd>(.*?)</dd>", rights)
    assert [(term, how.rpartition(": ")[2]) for term, how in terms] == [
        ("See your data", portal),
        ("Have it corrected", contact),
        ("Have it deleted", portal),
        ("Have its use paused", contact),
        ("Object", contact),
        ("Take it elsewhere", portal),
        ("Not to be judged by a computer alone", contact),
        ("Change your mind", contact),
        ("Complain", "The data protection authority of the country where you live or work, "
                     '<a href="https://www.edpb.europa.eu/about-edpb/about-edpb/members_en">'
                     "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en</a>."),
    ]
    assert ("<dd>Tell us to stop using your data where we rely on our legitimate interests, and at any time for direct marketing. "
            "Write to our privacy team: " + contact + "</dd>") in rights
    assert "California" not in page  # a GDPR request gets no CCPA section


def test_the_manifest_holds_the_recipients_decisions_authority_and_rights_the_report_shows(export_of):
    manifest = json.loads(export_of("gdpr").read("manifest.json"))

    assert manifest["categories"]["name_contact"]["recipients"] == [
        {"name": "Nimbus Hosting GmbH", "role": "processor", "country": "DE", "country_name": "Germany", "area": "eea",
         "safeguard": None, "safeguard_detail": None, "ccpa": "disclosed"},
        {"name": "Postwave Inc.", "role": "processor", "country": "US", "country_name": "United States", "area": "third_country",
         "safeguard": "standard_contractual_clauses",
         "safeguard_detail": "The European Commission's 2021 clauses for controllers and processors (module 2)", "ccpa": "disclosed"},
    ]
    assert manifest["categories"]["location"]["recipients"][1]["area"] == "adequate"
    assert manifest["categories"]["payment"]["automated_decisions"]["profiling"] is True
    assert manifest["categories"]["searches_commands"]["automated_decisions"] is None
    assert manifest["supervisory_authority"] == {"name": "The data protection authority of the country where you live or work",
                                                 "website": "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en"}
    assert [(r["id"], r["how"], r["url"]) for r in manifest["rights"]] == [
        ("access", "portal", "http://testserver/request/"),
        ("rectification", "privacy_contact", "mailto:privacy@example.com"),
        ("erasure", "portal", "http://testserver/request/"),
        ("restriction", "privacy_contact", "mailto:privacy@example.com"),
        ("objection", "privacy_contact", "mailto:privacy@example.com"),
        ("portability", "portal", "http://testserver/request/"),
        ("automated_decisions", "privacy_contact", "mailto:privacy@example.com"),
        ("withdraw_consent", "privacy_contact", "mailto:privacy@example.com"),
        ("complain", "supervisory_authority", "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en"),
    ]
    # What the archive held before is where it was.
    assert (manifest["format_version"], manifest["categories"]["name_contact"]["label"]) == (1, "Name and contact details")


def test_under_the_ccpa_the_report_lists_sources_purposes_and_who_received_what_saying_none_where_none(export_of):
    page = _page(export_of("ccpa"))

    ccpa = _part(page, '<section aria-labelledby="ccpa">')
    assert "<h2 id=\"ccpa\">What California law asks us to tell you</h2>" in ccpa
    assert ('<tr><th scope="row">Basic facts about you</th><td>You gave it to us; Data broker</td><td>Show our products in your '
            "language; Offer products suited to your age and country; Understand who uses our products</td></tr>") in ccpa
    assert ('<tr><th scope="row">Films, music, books, apps and games</th><td>Partner company</td><td>Let you carry on where you '
            "left off; Keep track of what you own or rented; Suggest things you may enjoy</td></tr>") in ccpa
    assert ('<tr><th scope="row">Location</th><td>We recorded it while you used our products</td><td>Show you local weather, '
            "maps and results; Help you find a lost device; Spot sign-ins from unusual places</td></tr>") in ccpa
    disclosed = ccpa[ccpa.index("<h3>Disclosed for a business purpose</h3>"):ccpa.index("<h3>Sold</h3>")]
    assert "<li>Postwave Inc. (service provider): Name and contact details</li>" in disclosed
    assert ("<li>Paylane Payments Ltd (service provider): Payment details; Subscriptions and licences; Purchases and account "
            "activity</li>") in disclosed
    assert "<li>Botanic Skills Pte. Ltd. (third party): Use of bots and add-ons</li>" in disclosed
    assert "Finanzamt" not in ccpa  # the tax office is declared under no CCPA heading
    assert "<h3>Sold</h3> <p>We have not sold your personal information.</p>" in ccpa
    assert ("<h3>Shared for cross-context behavioural advertising</h3> <ul> <li>Brightreach Ads Inc. (third party): Interests and "
            "favourites</li> </ul>") in ccpa


def test_the_report_names_the_supervisory_authority_and_the_privacy_contact_the_deployment_configures(settings):
    settings.DSAR_SUPERVISORY_AUTHORITY = {"name": "Datatilsynet", "website": "https://www.datatilsynet.no/"}
    settings.DEFAULT_FROM_EMAIL = "personvern@shop.example"
    request = request_make(status="processing", email="configured@example.com")
    category = report_category("searches_commands", records=1, sources=[OBSERVED], lines=[])
    html = report_render(request=request, categories=[category], generated_at=dt.datetime(2026, 5, 6, 7, 8, tzinfo=dt.UTC))
    page = " ".join(html.decode().split())
    assert ("<dt>Complain</dt> <dd>If you think we use your data against the law, or you are unhappy with our answer, you can "
            "complain to a supervisory authority, in particular where you live or work. Our supervisory authority: Datatilsynet, "
            '<a href="https://www.datatilsynet.no/">https://www.datatilsynet.no/</a>.</dd>') in page
    assert ('<dt>Have it corrected</dt> <dd>Ask us to correct data about you that is wrong, or to complete data that is missing. '
            'Write to our privacy team: <a href="mailto:personvern@shop.example">personvern@shop.example</a>.</dd>') in page


@pytest.mark.parametrize("jurisdiction, where", [
    ("gdpr", "If you are not happy with how we use your data or with our answer, you have the right to complain to a data "
             "protection authority, such as the one in the country where you live or work, and the right to take the matter to court."),
    ("ccpa", "If you are not happy with how we use your data or with our answer, you can file a complaint with the California "
             "Privacy Protection Agency or with the California Attorney General."),
])
def test_the_reports_last_words_say_where_to_complain_under_the_law_of_the_request(jurisdiction, where):
    request = request_make(status="processing", email=f"last.words.{jurisdiction}@example.com")
    request.jurisdiction = jurisdiction  # as filed under that law
    category = report_category("searches_commands", records=1, sources=[OBSERVED], lines=[])
    html = report_render(request=request, categories=[category], generated_at=dt.datetime(2026, 5, 6, 7, 8, tzinfo=dt.UTC))
    footer = _part(" ".join(html.decode().split()), '<footer class="page">')
    assert f"<p>{where}</p>" in footer
    assert ("data protection authority" in footer) == (jurisdiction == "gdpr")


def test_the_workers_report_gives_times_in_the_time_zone_the_person_filed_from(export_of):
    archive = export_of("gdpr", time_zone="Asia/Tokyo")
    page = _page(archive)
    manifest = json.loads(archive.read("manifest.json"))
    made = dt.datetime.fromisoformat(manifest["generated_at"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert "<dt>Times are shown in</dt><dd>the Asia/Tokyo time zone</dd>" in page
    assert f'<dt>This report made on</dt><dd><time datetime="{manifest["generated_at"]}">{made.day} {made:%B %Y, %H:%M}</time></dd>' in page

"""load_estate: the whole file is checked first; a bad key is named and nothing is loaded."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command

from connectors.base import Identity
from connectors.registry import connector_get
from estate.loader import estate_load, estate_parse

pytestmark = [pytest.mark.usefixtures("estate"), pytest.mark.django_db]

BAD = [
    ({"email": "{e}", "accounts": {"nickname": "x"}}, "subjects[1].accounts.nickname"),
    ({"email": "{e}", "accounts": {"devices": [{"os": "a"}, {"imei": 5}]}}, "subjects[1].accounts.devices[1].imei"),
    ({"email": "{e}", "payments": {"cards": [{"number": "4242", "cvc": "1"}]}}, "subjects[1].payments.cards[0].number"),
    ({"email": "{e}", "content": {"files": [{"path": "../etc/passwd", "base64": "", "category": "content"}]}}, "subjects[1].content.files[0].path"),
    ({"email": "{e}", "content": {"files": [{"path": "a", "category": "content"}]}}, "subjects[1].content.files[0]"),
    ({"email": "{e}", "content": {"files": [{"path": "a\u0000b", "base64": "", "category": "content"}]}}, "subjects[1].content.files[0].path"),
    ({"email": "{e}", "content": {"files": [{"path": "a/" + "x" * 256, "base64": "", "category": "content"}]}},
     "subjects[1].content.files[0].path"),
    ({"email": "{e}", "content": {"files": [{"path": "a/./b", "base64": "", "category": "content"}]}}, "subjects[1].content.files[0].path"),
    ({"email": "{e}", "content": {"files": [{"path": "a//b", "base64": "", "category": "content"}]}}, "subjects[1].content.files[0].path"),
    ({"email": "{e}", "content": {"files": [{"path": "a/\nb", "base64": "", "category": "content"}]}}, "subjects[1].content.files[0].path"),
    ({"email": "{e}", "third_party": [{"source": "X", "source_type": "cousin", "category": "demographic", "acquired_at": "2026-01-01"}]}, "subjects[1].third_party[0].source_type"),
    ({"email": "{e}", "support": {"chats": [{"topic": "t", "at": "yesterday"}]}}, "subjects[1].support.chats[0].at"),
    ({"email": "{e}", "support": {"feedback": [{"rating": 1, "at": "-3 days ago"}]}}, "subjects[1].support.feedback[0].at"),
    ({"email": "not-an-email"}, "subjects[1].email"),
    ({"email": "{e}", "surprise": 1}, "subjects[1].surprise"),
]


@pytest.mark.parametrize(("bad", "path"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_file_names_the_bad_key_and_loads_nothing(tmp_path, unique_email, bad, path):
    good_email, bad_email = unique_email("good"), unique_email("bad")
    bad = json.loads(json.dumps(bad).replace("{e}", bad_email))
    document = {"subjects": [{"email": good_email, "accounts": {"name": "Good", "searches": ["x"]}}, bad]}
    file = tmp_path / "estate.json"
    file.write_text(json.dumps(document))
    with pytest.raises(CommandError) as error:
        call_command("load_estate", str(file))
    assert path in str(error.value)
    assert list(connector_get("accounts").gather(Identity(email=good_email))) == []


def test_a_file_that_is_not_json_is_a_clear_error(tmp_path):
    file = tmp_path / "estate.json"
    file.write_text("{subjects: [")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("load_estate", str(file))


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("load_estate", str(tmp_path / "absent.json"))


def test_loading_the_same_subject_twice_replaces_it(tmp_path, unique_email):
    email = unique_email("again")
    file = tmp_path / "estate.json"
    for searches in (["a", "b"], ["c"]):
        file.write_text(json.dumps({"subjects": [{"email": email, "accounts": {"searches": searches}}]}))
        call_command("load_estate", str(file))
    found = [r.fields["query"] for r in connector_get("accounts").gather(Identity(email=email)) if r.category == "searches_commands"]
    assert found == ["c"]


def test_an_organisations_contact_is_taken_only_with_the_organisation_it_reaches(tmp_path, unique_email):
    email = unique_email("orphan")
    file = tmp_path / "estate.json"
    file.write_text(json.dumps({"subjects": [{"email": email, "accounts": {"organization_contact": "privacy@school.example.org"}}]}))
    with pytest.raises(CommandError) as error:
        call_command("load_estate", str(file))
    assert "subjects[0].accounts.organization_contact: Value error, needs the organization it reaches" in str(error.value)
    assert list(connector_get("accounts").gather(Identity(email=email))) == []


def test_a_time_written_as_days_ago_is_that_long_before_the_load(unique_email):
    email = unique_email("ago")
    before = dt.datetime.now(dt.UTC)
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"browse_history": [{"url": "https://example.com/", "at": "40 days ago"}]}}]}))
    after = dt.datetime.now(dt.UTC)
    [visit] = [r for r in connector_get("accounts").gather(Identity(email=email)) if r.category == "interactions.browse_history"]
    assert before - dt.timedelta(days=40) <= visit.collected_at <= after - dt.timedelta(days=40)


def test_a_stored_file_is_dated_as_the_estate_file_says(unique_email):
    email = unique_email("dated")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    files = [{"path": "cctv.mp4", "size_bytes": 16, "category": "video_recordings", "at": "2026-10-02T18:00:00Z"},
             {"path": "notes.txt", "base64": "aGk=", "category": "content"}]
    estate_load(estate_parse({"subjects": [{"email": email, "content": {"files": files}}]}))
    stored = {item.path: item.collected_at for item in connector_get("content").gather(Identity(email=email))}
    assert stored["cctv.mp4"] == dt.datetime(2026, 10, 2, 18, tzinfo=dt.UTC)
    assert before <= stored["notes.txt"] <= dt.datetime.now(dt.UTC)  # no time given: when it was loaded

"""A request end to end: API, real worker, real PostgreSQL and Redis, the accounts system."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa

from estate.stores import estate_database_url
from dsar.models import AuditEntry

from ..support.flows import approve, download, file_request, release_as_it_is, subject_view, wait_until_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


def test_access_request_yields_an_archive_whose_manifest_checksums_match(api, reviewer, mailoutbox):
    request_id, token = file_request(api, mailoutbox, type="access", email="  Alice@Example.com ")
    assert subject_view(api, request_id, token)["status"] == "pending_review"

    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    release_as_it_is(reviewer, request_id)  # Alice's contacts, shared ticket, CCTV and voice wait for review

    view = subject_view(api, request_id, token)
    assert view["download_url"]
    archive = download(api, view["download_url"])
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    members = {name for name in archive.namelist() if not name.endswith("/")} - {"manifest.json"}
    assert {f["path"] for f in manifest["files"]} == members
    for listed in manifest["files"]:
        data = archive.read(listed["path"])
        assert len(data) == listed["bytes"]
        assert hashlib.sha256(data).hexdigest() == listed["sha256"]

    assert manifest["subject_email"] == "alice@example.com"
    assert manifest["categories"]["name_contact"]["records"] >= 1
    assert manifest["categories"]["name_contact"]["connectors"] == ["accounts"]
    names = json.loads(archive.read("data/name_contact.json"))
    assert any(r["fields"].get("name") == "Alice Martin" for r in names)
    searches = json.loads(archive.read("data/searches_commands.json"))
    assert {r["fields"]["query"] for r in searches} == {"weather leeds", "bike repair near me"}
    assert all(r["source"]["type"] == "observed" for r in searches)
    credentials = json.loads(archive.read("data/credentials.json"))
    assert credentials and "password_last_changed" in credentials[0]["fields"]
    assert b"correct horse" not in b"".join(archive.read(n) for n in archive.namelist())
    assert "Alice Martin" in archive.read("data/name_contact.csv").decode()
    assert b"Name and contact details" in archive.read("index.html")
    assert view["result"]["categories"]["searches_commands"] == 2


def test_deletion_request_erases_the_accounts_data_and_the_receipt_says_so(api, reviewer, mailoutbox, unique_email):
    email = unique_email("dora")
    from estate.loader import estate_load, estate_parse

    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Dora", "searches": ["a", "b", "c"]}}]}))
    request_id, token = file_request(api, mailoutbox, type="deletion", email=email)
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"

    result = subject_view(api, request_id, token)["result"]
    assert result["erased"]["searches_commands"] == 3
    assert result["erased"]["name_contact"] == 1
    engine = sa.create_engine(estate_database_url("accounts"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM users WHERE email = 'alice@example.com'")).scalar() == 1
    engine.dispose()
    # The recipients of what was erased are told after completion, each with an entry of its own.
    actions = list(AuditEntry.objects.filter(request_id=request_id).exclude(action="recipient_notified").values_list("action", flat=True))
    assert actions == ["filed", "verified", "approved", "completed"]

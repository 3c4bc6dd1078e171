"""Download links: signed, for one request, and dead once the export expires."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from urllib.parse import urlparse

import pytest
from django.core import signing
from django.utils import timezone

from dsar.models import Export

from ..support.flows import approve, file_request, subject_view, wait_until_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


@pytest.fixture
def completed(api, reviewer, mailoutbox, unique_email):
    request_id, token = file_request(api, mailoutbox, type="access", email=unique_email("dl"))
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    return request_id, urlparse(subject_view(api, request_id, token)["download_url"]).path


def test_the_signed_link_downloads_the_archive(api, completed):
    _, path = completed
    answer = api.get(path)
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content)[:2] == b"PK"


def test_the_link_downloads_for_a_client_that_accepts_only_a_zip(api, completed):
    _, path = completed
    answer = api.get(path, HTTP_ACCEPT="application/zip")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    assert b"".join(answer.streaming_content)[:2] == b"PK"


def test_a_forged_or_altered_link_fails(api, completed):
    request_id, path = completed
    signature = path.rsplit("/", 1)[1]
    forged = signing.dumps({"r": request_id, "e": 1}, key="not-the-secret", salt="dsar.download")
    for bad in (signature[:-2] + "xx", forged, "garbage"):
        assert api.get(f"/api/v1/requests/{request_id}/download/{bad}").status_code == 404


def test_a_link_works_only_for_its_own_request(api, completed, reviewer, mailoutbox, unique_email):
    _, path = completed
    other_id, _ = file_request(api, mailoutbox, type="access", email=unique_email("other"))
    signature = path.rsplit("/", 1)[1]
    assert api.get(f"/api/v1/requests/{other_id}/download/{signature}").status_code == 404


def test_an_expired_link_fails(api, completed):
    request_id, path = completed
    Export.objects.filter(request_id=request_id).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert api.get(path).status_code == 404


def test_an_encrypted_download_needs_the_passphrase_and_holds_the_same_files(api, completed):
    from stream_unzip import stream_unzip

    request_id, path = completed
    plain = zipfile.ZipFile(io.BytesIO(b"".join(api.get(path).streaming_content)))
    answer = api.post(path, {"passphrase": "correct battery horse"}, format="json")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    encrypted = b"".join(answer.streaming_content)
    assert b"manifest" not in encrypted or b"format_version" not in encrypted  # contents are not readable as they are
    unpacked = {name.decode(): b"".join(chunks) for name, _size, chunks in stream_unzip([encrypted], password="correct battery horse")}
    assert unpacked == {name: plain.read(name) for name in plain.namelist() if not name.endswith("/")}
    with pytest.raises(Exception):
        for _name, _size, chunks in stream_unzip([encrypted], password="wrong passphrase!!"):
            b"".join(chunks)


def test_an_encrypted_download_refuses_a_short_passphrase_and_a_bad_link(api, completed):
    request_id, path = completed
    assert api.post(path, {"passphrase": "short"}, format="json").status_code == 400
    assert api.post(f"/api/v1/requests/{request_id}/download/forged", {"passphrase": "long enough passphrase"}, format="json").status_code == 404

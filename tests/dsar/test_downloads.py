"""Download links: signed, for one request, and dead once the export expires."""

from __future__ import annotations

import datetime as dt
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

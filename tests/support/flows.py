"""The steps most tests take: file a request, verify it, approve it, wait for its end."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlparse

from dsar.models import Request

from ..conftest import code_from
from .waiting import wait_for

FINAL = {"completed", "failed", "denied", "canceled", "referred", "expired"}


def file_request(api, mailoutbox, *, type: str, email: str, **extra) -> tuple[str, str]:
    """File and verify a request through the API; returns (id, bearer token)."""
    created = api.post("/api/v1/requests", {"type": type, "email": email, **extra}, format="json")
    assert created.status_code == 201, created.content
    request_id = created.json()["id"]
    verified = api.post(f"/api/v1/requests/{request_id}/verify", {"code": code_from(mailoutbox, email.strip().lower())}, format="json")
    assert verified.status_code == 200, verified.content
    return request_id, verified.json()["token"]


def approve(staff, request_id: str) -> None:
    response = staff.post(f"/api/v1/staff/requests/{request_id}/approve", {"note": "identity checked"}, format="json")
    assert response.status_code == 200, response.content


def release_as_it_is(staff, request_id: str) -> None:
    """Release an export held because it may hold other people's data, every such item as it is."""
    items = staff.get(f"/api/v1/staff/requests/{request_id}/review").json()["items"]
    decisions = [{"item": item["id"], "action": "release"} for item in items]
    response = staff.post(f"/api/v1/staff/requests/{request_id}/review", {"decisions": decisions}, format="json")
    assert response.status_code == 200, response.content


def wait_until_final(request_id: str, timeout: float = 90) -> Request:
    return wait_for(
        lambda: (r := Request.objects.get(pk=request_id)).status in FINAL and r,
        timeout=timeout,
        what=f"request {request_id} to finish",
    )


def subject_view(api, request_id: str, token: str) -> dict:
    response = api.get(f"/api/v1/requests/{request_id}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()


def download(api, url: str) -> zipfile.ZipFile:
    response = api.get(urlparse(url).path)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))

"""The web server's access log: the addresses it records, without the secrets they carry."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from gunicorn.config import Config

from dsar.access_log import RedactingLogger

REQUEST_ID = "0b7e3d1c-52a4-4c41-9a0e-6f1d2c3b4a59"
SIGNATURE = ".eJyrVkpUslIqzUvOzy1ISS1SqAUAKmYFnA:1uXyZa:Qm9nU2lnTmF0dXJlX3Rlc3Q"


def _atoms(*, raw_uri: str, path_info: str, query: str = "", headers: tuple = (), method: str = "GET",
           response_headers: tuple = ()) -> dict:
    """The atoms RedactingLogger gives the access log's format for one request, built from the
    objects gunicorn's workers hand it (as gunicorn's own tests build them)."""
    response = SimpleNamespace(status="200 OK", headers=response_headers, sent=512)
    request = SimpleNamespace(headers=headers)
    environ = {"REQUEST_METHOD": method, "RAW_URI": raw_uri, "PATH_INFO": path_info, "QUERY_STRING": query,
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "192.0.2.7"}
    for name, value in headers:
        environ[f"HTTP_{name.upper().replace('-', '_')}"] = value
    return RedactingLogger(Config()).atoms(response, request, environ, dt.timedelta(milliseconds=3))


def test_the_status_links_key_is_redacted_from_the_request_line_and_the_query_and_the_path_is_kept():
    atoms = _atoms(raw_uri=f"/requests/{REQUEST_ID}?key=SECRET123", path_info=f"/requests/{REQUEST_ID}", query="key=SECRET123")
    assert atoms["r"] == f"GET /requests/{REQUEST_ID}?key=[redacted] HTTP/1.1"
    assert atoms["U"] == f"/requests/{REQUEST_ID}"
    assert atoms["q"] == "key=[redacted]"
    assert atoms["{raw_uri}e"] == f"/requests/{REQUEST_ID}?key=[redacted]"
    assert atoms["{query_string}e"] == "key=[redacted]"


def test_the_download_signature_is_redacted_from_the_path_whether_escaped_or_not():
    escaped = SIGNATURE.replace(":", "%3A")
    atoms = _atoms(raw_uri=f"/api/v1/requests/{REQUEST_ID}/download/{escaped}", method="POST",
                   path_info=f"/api/v1/requests/{REQUEST_ID}/download/{SIGNATURE}")
    assert atoms["r"] == f"POST /api/v1/requests/{REQUEST_ID}/download/[redacted] HTTP/1.1"
    assert atoms["U"] == f"/api/v1/requests/{REQUEST_ID}/download/[redacted]"
    assert atoms["{path_info}e"] == f"/api/v1/requests/{REQUEST_ID}/download/[redacted]"


def test_a_referer_holding_a_status_link_or_a_download_link_keeps_its_address_but_not_its_secret():
    status_link = f"https://privacy.example.com/requests/{REQUEST_ID}?key=SECRET123"
    atoms = _atoms(raw_uri="/static/portal.css", path_info="/static/portal.css", headers=(("Referer", status_link),))
    assert atoms["f"] == f"https://privacy.example.com/requests/{REQUEST_ID}?key=[redacted]"
    assert atoms["{referer}i"] == f"https://privacy.example.com/requests/{REQUEST_ID}?key=[redacted]"
    assert atoms["{http_referer}e"] == f"https://privacy.example.com/requests/{REQUEST_ID}?key=[redacted]"

    download_link = f"https://privacy.example.com/api/v1/requests/{REQUEST_ID}/download/{SIGNATURE}#top"
    atoms = _atoms(raw_uri="/", path_info="/", headers=(("Referer", download_link),))
    assert atoms["f"] == f"https://privacy.example.com/api/v1/requests/{REQUEST_ID}/download/[redacted]#[redacted]"


def test_the_queues_filters_and_paging_stay_readable_and_its_search_does_not():
    query = "q=ada%40example.com&status=review&type=access&overdue=yes&sort=-due&page=2"
    atoms = _atoms(raw_uri=f"/console/?{query}", path_info="/console/", query=query)
    assert atoms["q"] == "q=[redacted]&status=review&type=access&overdue=yes&sort=-due&page=2"
    assert atoms["r"] == "GET /console/?q=[redacted]&status=review&type=access&overdue=yes&sort=-due&page=2 HTTP/1.1"
    api_query = "status=approved&page=3&page_size=50"
    assert _atoms(raw_uri=f"/api/v1/staff/requests?{api_query}", path_info="/api/v1/staff/requests", query=api_query)["q"] == api_query


def test_a_value_the_server_would_read_as_key_is_redacted_however_its_name_is_spelled_and_a_bare_word_too():
    query = "%6Bey=SECRET123&k%65y=SECRET456&SECRET789&&next=/requests/x?key=SECRET000"
    atoms = _atoms(raw_uri=f"/requests/{REQUEST_ID}?{query}", path_info=f"/requests/{REQUEST_ID}", query=query)
    assert atoms["q"] == "%6Bey=[redacted]&k%65y=[redacted]&[redacted]&&next=[redacted]"


def test_the_staff_token_and_the_session_cookie_are_redacted_from_the_header_atoms():
    atoms = _atoms(raw_uri="/api/v1/staff/requests", path_info="/api/v1/staff/requests",
                   headers=(("Authorization", "Token STAFFTOKEN1"), ("Cookie", "sessionid=SESSION1")),
                   response_headers=(("Set-Cookie", "sessionid=SESSION2; HttpOnly"),))
    assert (atoms["{authorization}i"], atoms["{cookie}i"], atoms["{set-cookie}o"]) == ("[redacted]", "[redacted]", "[redacted]")
    assert (atoms["{http_authorization}e"], atoms["{http_cookie}e"]) == ("[redacted]", "[redacted]")


def test_an_address_with_no_secret_is_logged_as_it_came():
    atoms = _atoms(raw_uri="/healthz/ready", path_info="/healthz/ready")
    assert (atoms["r"], atoms["U"], atoms["q"], atoms["f"]) == ("GET /healthz/ready HTTP/1.1", "/healthz/ready", "", "-")


"""The web server's access log: the addresses it records, without the secrets they carry."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config

import devstack
from dsar.access_log import RedactingLogger

from ..support.processes import process_stop
from ..support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
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


def _get(port: int, path: str, headers: dict) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _answers(port: int) -> bool:
    try:
        _get(port, "/healthz", {})
    except OSError:
        return False
    return True


def _lines_naming(log: Path, text: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if text in line] if log.exists() else []


def test_the_web_server_as_devstack_runs_it_logs_the_paths_of_status_and_download_links_without_their_secrets(tmp_path):
    port = devstack.free_port()
    log = tmp_path / "access.log"
    errors = tmp_path / "errors.log"  # the product's own log: Django names the path of each 404
    server = subprocess.Popen([sys.executable, *devstack.gunicorn_args(f"127.0.0.1:{port}", workers=1, threads=1),
                               "--access-logfile", str(log)],
                              cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=errors.open("w"))
    try:
        wait_for(lambda: server.poll() is not None or _answers(port), timeout=60, what="gunicorn to answer")
        assert server.poll() is None, "gunicorn exited at start-up"
        referer = f"http://127.0.0.1:{port}/requests/{REQUEST_ID}?key=SECRET123"
        assert _get(port, f"/requests/{REQUEST_ID}?key=SECRET123", {"Referer": referer}) == 404
        assert _get(port, f"/api/v1/requests/{REQUEST_ID}/download/{SIGNATURE}", {"Referer": referer}) == 404
        wait_for(lambda: len(_lines_naming(log, REQUEST_ID)) == 2, timeout=30, what="both requests in the access log")
    finally:
        process_stop(server)
    lines = _lines_naming(log, REQUEST_ID)
    status_line, download_line = lines
    assert f'"GET /requests/{REQUEST_ID}?key=[redacted] HTTP/1.1" 404' in status_line
    assert f'"GET /api/v1/requests/{REQUEST_ID}/download/[redacted] HTTP/1.1" 404' in download_line
    for line in lines:
        assert f'"http://127.0.0.1:{port}/requests/{REQUEST_ID}?key=[redacted]"' in line
    assert f"Not Found: /api/v1/requests/{REQUEST_ID}/download/[redacted]" in errors.read_text()
    text = log.read_text() + errors.read_text()
    assert "SECRET123" not in text
    assert SIGNATURE not in text
    assert "Qm9nU2lnTmF0dXJlX3Rlc3Q" not in text

"""Property tests (hypothesis) on everything that parses input from outside: the estate document,
connector dataset files, a helpdesk's answers, download links, subject tokens and addresses. Each
either gives a sound value or refuses with its own clear error; nothing else escapes."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Identity, PermanentError, Record, TransientError
from estate.loader import EstateError, estate_parse
from connectors.systems import SystemsError, system_load
from dsar import exports, services
from dsar.errors import InvalidInput, NotFound

from ..conftest import ROOT

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=20)


def _mutated(document, draw_path: list[int], replacement):
    """`document` with the leaf or branch that `draw_path` walks to replaced."""
    document = copy.deepcopy(document)
    node, parent, key = document, None, None
    for step in draw_path:
        if isinstance(node, dict) and node:
            parent, key = node, sorted(node)[step % len(node)]
        elif isinstance(node, list) and node:
            parent, key = node, step % len(node)
        else:
            break
        node = parent[key]
    if parent is None:
        return replacement
    parent[key] = replacement
    return document


DEMO = json.loads((ROOT / "estate" / "demo.json").read_text())


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=8), replacement=json_values)
def test_the_estate_parser_refuses_any_malformed_document_with_the_bad_key_named(path, replacement):
    document = _mutated(DEMO, path, replacement)
    try:
        estate = estate_parse(document)
    except EstateError as error:
        assert str(error)
    else:
        assert all(subject.email for subject in estate.subjects)


@FUZZ
@given(document=json_values)
def test_the_estate_parser_refuses_arbitrary_json_cleanly(document):
    with pytest.raises(EstateError):
        estate_parse(document if document != {"subjects": []} else {"subjects": None})


SYSTEM = yaml.safe_load((ROOT / "estate" / "systems" / "accounts.yaml").read_text())


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=7), replacement=json_values)
def test_the_system_file_parser_refuses_any_malformed_file_with_the_file_and_key_named(tmp_path_factory, path, replacement):
    file = tmp_path_factory.mktemp("systems") / "accounts.yaml"
    file.write_text(yaml.safe_dump(_mutated(SYSTEM, path, replacement)))
    try:
        system = system_load(file, environ={})
    except SystemsError as error:
        assert error.problems and all(line.startswith(f"{file}: ") for line in error.problems)
    else:
        assert system.options["dataset"].tables and isinstance(system.name, str)


class _Helpdesk(BaseHTTPRequestHandler):
    """Answers every call with the JSON the test chose for that endpoint."""

    answers: dict[str, object] = {}

    def do_GET(self):  # noqa: N802 (the standard library's name)
        path = self.path.split("?")[0]
        kind = ("search" if "search" in path else "tickets" if "tickets/requested" in path else
                "comments" if "comments" in path else "user")
        body = json.dumps(self.answers.get(kind)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def helpdesk():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Helpdesk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    environ = {"DSAR_HELPDESK_BASE_URL": f"http://127.0.0.1:{server.server_port}", "DSAR_HELPDESK_EMAIL": "dsar@example.com",
               "DSAR_HELPDESK_TOKEN": "t"}
    connector = system_load(ROOT / "estate" / "systems" / "support.yaml", environ).connector()
    yield connector
    connector.close()
    server.shutdown()


EMAIL = "fuzz@example.com"
# Answers shaped like the helpdesk's, with any part of them replaced by anything.
user = st.fixed_dictionaries({"id": st.integers(1, 5) | json_values, "email": st.just(EMAIL) | json_values},
                             optional={"role": json_values, "name": json_values, "user_fields": json_values})
ticket = st.fixed_dictionaries(
    {"id": st.integers(1, 5) | json_values},
    optional={"requester_id": st.integers(1, 5) | json_values, "subject": json_values, "created_at": st.just("2025-01-02T03:04:05") | json_values,
              "tags": st.just(["feedback"]) | json_values, "custom_fields": json_values, "satisfaction_rating": json_values},
)
comment = st.fixed_dictionaries({"id": st.integers(1, 5) | json_values},
                                optional={"author_id": st.integers(1, 5) | json_values, "body": json_values, "created_at": json_values})
meta = st.fixed_dictionaries({"has_more": st.booleans() | json_values}, optional={"after_cursor": json_values})
answers = st.fixed_dictionaries({
    "search": st.fixed_dictionaries({"users": st.lists(user | json_values, max_size=2)}) | json_values,
    "tickets": st.fixed_dictionaries({"tickets": st.lists(ticket | json_values, max_size=2), "meta": meta | json_values}) | json_values,
    "comments": st.fixed_dictionaries({"comments": st.lists(comment | json_values, max_size=3), "meta": meta | json_values}) | json_values,
    "user": st.fixed_dictionaries({"user": user | json_values}) | json_values,
})


@FUZZ
@given(answers=answers)
def test_the_support_connector_turns_any_helpdesk_answer_into_records_or_a_connector_error(helpdesk, answers):
    _Helpdesk.answers = answers
    try:
        records = list(helpdesk.gather(Identity(email=EMAIL)))
    except (PermanentError, TransientError) as error:
        assert str(error).startswith("support")
    else:
        assert all(isinstance(record, Record) and record.category in helpdesk.categories for record in records)


@FUZZ
@given(signature=st.text(max_size=200) | st.binary(max_size=100).map(lambda b: b.hex()))
@pytest.mark.django_db
def test_a_download_link_with_any_forged_signature_opens_nothing(signature):
    assert exports.export_for_download(request_id=uuid.uuid4(), signature=signature) is None


@FUZZ
@given(request_id=st.uuids() | st.text(max_size=40), token=st.none() | st.text(max_size=80))
@pytest.mark.django_db
def test_a_subject_token_or_request_id_of_any_shape_finds_nothing(request_id, token):
    with pytest.raises(NotFound):
        services.request_get_for_subject(request_id=request_id, token=token)


@FUZZ
@given(text=st.text(max_size=80) | st.emails().map(lambda e: f"  {e.upper()} "))
def test_an_address_is_refused_or_normalized_once_and_for_all(text):
    try:
        normalized = services.email_normalize(text)
    except InvalidInput:
        return
    assert normalized == normalized.strip().lower() and "@" in normalized
    assert services.email_normalize(normalized) == normalized

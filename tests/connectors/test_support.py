"""The demo's support system, its file (estate/systems/support.yaml, kind http) read by the HTTP
engine, against the real demo helpdesk, started for this module as its own process."""

from __future__ import annotations

import datetime as dt
import select
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from connectors.base import PROVIDED, Identity, PermanentError, Record, TransientError
from connectors.http import HttpConnector
from connectors.systems import System, system_load
from devstack import helpdesk_command
from estate.support_load import support_load, support_load_many

from ..support.answering import answering
from ..support.processes import process_stop
from ..support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SUPPORT_FILE = ROOT / "estate" / "systems" / "support.yaml"
SUPPORT, BOT_USAGE, FEEDBACK = "interactions.support", "interactions.bot_usage", "feedback_ratings"
# The token begins with a dash, as one in 64 random tokens does: the helpdesk must still start.
ADMIN, TOKEN = "admin@example.com", "-helpdesk-test-token"

SAM = "sam@example.com"
SAM_PROMO = "sam+promo@example.com"
ROBIN = "Robin.Case@Example.COM"  # stored with capitals; the identity arrives lower-cased

SAM_CHATS = [
    {"topic": "Cannot sign in", "at": "2024-03-01T10:00:00Z", "messages": [
        {"from": "bot", "body": "Hi! What can I help with?"},
        {"from": "customer", "body": "I cannot sign in."},
        {"from": "agent", "agent_name": "Ana", "body": "I have reset your sign-in."},
        {"from": "customer", "body": "Thanks, it works."},
    ]},
    {"topic": "Refund", "at": dt.datetime(2024, 4, 2, 9, 30, tzinfo=dt.UTC), "messages": [
        {"from": "customer", "body": "I would like a refund."},
        {"from": "agent", "agent_name": "Ben", "body": "Refunded."},
    ]},
]
SAM_FEEDBACK = [
    {"rating": 5, "text": "Quick and kind", "at": "2024-03-02T08:00:00Z"},
    {"rating": 2, "text": "Took too long", "at": "2024-04-03T08:00:00+02:00"},
]
PROMO_CHATS = [
    {"topic": "Promo code", "at": "2024-05-01T12:00:00Z", "messages": [
        {"from": "customer", "body": "My promo code fails."},
        {"from": "agent", "agent_name": "Ana", "body": "Try PROMO10."},
        {"from": "bot", "body": "Was this helpful?"},
    ]},
]
PROMO_FEEDBACK = [{"rating": 4, "text": "Fine", "at": "2024-05-02T12:00:00Z"}]
ROBIN_CHATS = [
    {"topic": "Invoice copy", "at": "2024-06-01T07:00:00Z", "messages": [{"from": "customer", "body": "Please resend."}]},
]


def _sam_expected() -> list[tuple[str, dict]]:
    """What gather must find for sam@example.com, ticket ids left out."""
    sign_in, refund = "2024-03-01T10:00:00Z", "2024-04-02T09:30:00Z"
    customer = {"from": "customer", "at": sign_in}
    return [
        (SUPPORT, {"subject": "Cannot sign in", "created_at": sign_in, "messages": [
            {**customer, "body": "I cannot sign in."},
            {"from": "agent", "agent_name": "Ana", "body": "I have reset your sign-in.", "at": sign_in},
            {**customer, "body": "Thanks, it works."},
        ]}),
        (BOT_USAGE, {"subject": "Cannot sign in", "created_at": sign_in, "messages": [
            {"from": "bot", "agent_name": "Help Bot", "body": "Hi! What can I help with?", "at": sign_in},
            {**customer, "body": "I cannot sign in."},
            {**customer, "body": "Thanks, it works."},
        ]}),
        (SUPPORT, {"subject": "Refund", "created_at": refund, "messages": [
            {"from": "customer", "body": "I would like a refund.", "at": refund},
            {"from": "agent", "agent_name": "Ben", "body": "Refunded.", "at": refund},
        ]}),
        (FEEDBACK, {"rating": 5, "text": "Quick and kind", "at": "2024-03-02T08:00:00Z"}),
        (FEEDBACK, {"rating": 2, "text": "Took too long", "at": "2024-04-03T06:00:00Z"}),
    ]


def _shape(records: list[Record]) -> list[tuple[str, dict]]:
    return [(r.category, {k: v for k, v in r.fields.items() if k != "ticket_id"}) for r in records]


def _answers(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/api/v2/users/search.json", timeout=1).status_code == 401
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def helpdesk(tmp_path_factory) -> Iterator[str]:
    """The helpdesk's base URL: the real service on a free loopback port, with its own SQLite file."""
    db = tmp_path_factory.mktemp("helpdesk") / "helpdesk.sqlite3"
    process = subprocess.Popen(helpdesk_command(0, db, ADMIN, TOKEN), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        # Port 0 lets the service pick a free port, which its ready line names.
        readable, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if readable else ""
        assert line.startswith("helpdesk listening on http://"), f"the helpdesk did not start (said {line!r})"
        base_url = line.split()[-1]
        wait_for(lambda: _answers(base_url), timeout=10, what="the helpdesk to answer")
        yield base_url
    finally:
        process_stop(process, timeout=10)


@pytest.fixture(scope="module")
def raw(helpdesk) -> Iterator[requests.Session]:
    """A plain HTTP session on the helpdesk, for looking behind the connector."""
    session = requests.Session()
    session.auth = (f"{ADMIN}/token", TOKEN)
    yield session
    session.close()


def support_system(base_url: str, *, token: str = TOKEN) -> System:
    """The demo's support system, as its file describes it, on the helpdesk at `base_url`."""
    return system_load(SUPPORT_FILE, {"DSAR_HELPDESK_BASE_URL": base_url, "DSAR_HELPDESK_EMAIL": ADMIN, "DSAR_HELPDESK_TOKEN": token})


def support_connector(base_url: str, *, token: str = TOKEN, timeout: float | None = None) -> HttpConnector:
    """The support system's connector, with a shorter timeout than its file's when given."""
    system = support_system(base_url, token=token)
    api = system.options["api"]
    if timeout is not None:
        api = api.model_copy(update={"connection": api.connection.model_copy(update={"timeout": timeout})})
    return HttpConnector(name=system.name, api=api)


def load(helpdesk: str, subject_email: str, chats: list[dict], feedback: list[dict] | None = None) -> None:
    connector = support_connector(helpdesk)
    try:
        support_load(connector=connector, subject_email=subject_email, chats=chats, feedback=feedback or [])
    finally:
        connector.close()


@pytest.fixture(scope="module")
def loaded(helpdesk) -> None:
    load(helpdesk, SAM, SAM_CHATS, SAM_FEEDBACK)
    load(helpdesk, SAM_PROMO, PROMO_CHATS, PROMO_FEEDBACK)
    load(helpdesk, ROBIN, ROBIN_CHATS)


@pytest.fixture
def connector(helpdesk) -> Iterator[HttpConnector]:
    connector = support_connector(helpdesk, timeout=5)
    yield connector
    connector.close()


def gather(connector: HttpConnector, email: str) -> list[Record]:
    return list(connector.gather(Identity(email=email)))


def search(raw: requests.Session, helpdesk: str, email: str) -> list[dict]:
    response = raw.get(f"{helpdesk}/api/v2/users/search.json", params={"query": f"email:{email}"}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["users"]


# --- Gathering -------------------------------------------------------------------------------------


def test_gather_returns_exactly_the_subjects_chats_bot_usage_and_feedback(loaded, connector):
    records = gather(connector, SAM)

    assert _shape(records) == _sam_expected()
    assert {r.system for r in records} == {"support.tickets"}
    assert {r.source for r in records} == {PROVIDED}
    assert records[0].collected_at == dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)
    assert records[0].fields["ticket_id"] == records[1].fields["ticket_id"]  # the bot record is of the same ticket


def _calls(connector: HttpConnector) -> list[str]:
    """The paths of the connector's calls from now on, as they went over the wire."""
    calls: list[str] = []
    pool = connector.pool
    sent = pool.urlopen

    def urlopen(method, url, *args, **kwargs):
        calls.append(urlsplit(url)._replace(scheme="", netloc="").geturl())
        return sent(method, url, *args, **kwargs)

    pool.urlopen = urlopen
    return calls


def test_gather_has_each_tickets_authors_side_loaded_and_looks_none_up(loaded, connector):
    calls = _calls(connector)
    assert _shape(gather(connector, SAM)) == _sam_expected()
    paths = [call.split("?")[0] for call in calls]
    assert paths[:2] == ["/api/v2/users/search.json", paths[1]] and paths[1].endswith("/tickets/requested.json")
    assert len(paths) == 2 + 4 and all(p.endswith("/comments.json") for p in paths[2:])  # Sam's four tickets
    assert all("include=users" in call for call in calls[2:])


def test_an_author_the_helpdesk_no_longer_has_is_shown_as_staff_without_a_name(helpdesk, raw, connector):
    email = "lee.gone-agent@example.com"
    load(helpdesk, email, [{"topic": "Lost parcel", "at": "2024-07-01T10:00:00Z", "messages": [
        {"from": "customer", "body": "Where is it?"}, {"from": "agent", "agent_name": "Departed Dana", "body": "On its way."}]}])
    (user,) = search(raw, helpdesk, email)
    (ticket,) = raw.get(f"{helpdesk}/api/v2/users/{user['id']}/tickets/requested.json").json()["tickets"]
    comments = raw.get(f"{helpdesk}/api/v2/tickets/{ticket['id']}/comments.json").json()["comments"]
    (agent_id,) = {c["author_id"] for c in comments} - {user["id"]}
    assert raw.delete(f"{helpdesk}/api/v2/users/{agent_id}.json").status_code == 200  # the agent left: soft-deleted

    (chat,) = gather(connector, email)
    assert chat.fields["messages"] == [{"from": "customer", "body": "Where is it?", "at": "2024-07-01T10:00:00Z"},
                                       {"from": "agent", "body": "On its way.", "at": "2024-07-01T10:00:00Z"}]


def test_gather_for_a_plus_suffixed_address_finds_only_that_subject(loaded, connector):
    records = gather(connector, SAM_PROMO)

    assert [(r.category, r.fields.get("subject") or r.fields["text"]) for r in records] == [
        (SUPPORT, "Promo code"), (BOT_USAGE, "Promo code"), (FEEDBACK, "Fine")]
    assert records[2].fields["rating"] == 4


def test_gather_matches_an_address_stored_with_other_capitals(loaded, connector):
    records = gather(connector, ROBIN.lower())

    assert [(r.category, r.fields["subject"]) for r in records] == [(SUPPORT, "Invoice copy")]


def test_gather_finds_nothing_for_an_unknown_subject(loaded, connector):
    assert gather(connector, "nobody@example.com") == []


def test_load_reuses_an_agent_with_the_same_name(loaded, helpdesk, raw):
    def ana_ids(email: str) -> set[int]:
        (user,) = search(raw, helpdesk, email)
        tickets = raw.get(f"{helpdesk}/api/v2/users/{user['id']}/tickets/requested.json", timeout=5).json()["tickets"]
        ids = set()
        for ticket in tickets:
            comments = raw.get(f"{helpdesk}/api/v2/tickets/{ticket['id']}/comments.json", timeout=5).json()["comments"]
            ids |= {c["author_id"] for c in comments if c["body"] in ("I have reset your sign-in.", "Try PROMO10.")}
        return ids

    assert ana_ids(SAM) == ana_ids(SAM_PROMO)
    assert len(ana_ids(SAM)) == 1


def test_loading_many_subjects_at_once_gives_each_its_own_data_and_creates_each_agent_once(helpdesk, raw, connector):
    agent = "Parallel Agent"
    chats = lambda n: [{"topic": f"Question {n}", "at": "2024-07-01T10:00:00Z", "messages": [  # noqa: E731
        {"from": "customer", "body": f"Question number {n}"}, {"from": "agent", "agent_name": agent, "body": f"Answer {n}"},
        {"from": "bot", "body": "Anything else?"}]}]
    subjects = [(f"many.{n}@example.com", chats(n), [{"rating": 1 + n % 5, "text": f"rated {n}", "at": "2024-07-02T10:00:00Z"}])
                for n in range(12)]
    support_load_many(system=support_system(helpdesk), subjects=subjects, threads=4)

    for n in range(12):
        records = gather(connector, f"many.{n}@example.com")
        assert sorted(r.category for r in records) == sorted([SUPPORT, BOT_USAGE, FEEDBACK])
        assert next(r for r in records if r.category == SUPPORT).fields["subject"] == f"Question {n}"
    authors = set()  # one agent, created once, answered all twelve
    for n in range(12):
        (user,) = search(raw, helpdesk, f"many.{n}@example.com")
        for ticket in raw.get(f"{helpdesk}/api/v2/users/{user['id']}/tickets/requested.json", timeout=5).json()["tickets"]:
            comments = raw.get(f"{helpdesk}/api/v2/tickets/{ticket['id']}/comments.json", timeout=5).json()["comments"]
            authors |= {c["author_id"] for c in comments if c["body"].startswith("Answer ")}
    assert len(authors) == 1


def test_load_twice_replaces_the_subjects_data(helpdesk, connector):
    email = "lee@example.com"
    load(helpdesk, email, SAM_CHATS, SAM_FEEDBACK)
    load(helpdesk, email, ROBIN_CHATS)

    assert [(r.category, r.fields["subject"]) for r in gather(connector, email)] == [(SUPPORT, "Invoice copy")]


def test_gather_pages_through_more_than_100_tickets_and_100_comments(helpdesk, raw, connector):
    email = "many@example.com"
    messages = [{"from": "customer" if i % 2 else "agent", "agent_name": "Cy", "body": f"message {i}"} for i in range(150)]
    long_chat = {"topic": "Long chat", "at": "2024-01-01T00:00:00Z", "messages": messages}
    hello = [{"from": "customer", "body": "hi"}]
    short_chats = [{"topic": f"chat {i}", "at": "2024-01-02T00:00:00Z", "messages": hello} for i in range(104)]
    load(helpdesk, email, [long_chat, *short_chats])

    (user,) = search(raw, helpdesk, email)
    first_tickets = raw.get(f"{helpdesk}/api/v2/users/{user['id']}/tickets/requested.json", timeout=5).json()
    assert len(first_tickets["tickets"]) == 100 and first_tickets["meta"]["has_more"]  # the service really pages
    long_id = first_tickets["tickets"][0]["id"]
    first_comments = raw.get(f"{helpdesk}/api/v2/tickets/{long_id}/comments.json", timeout=5).json()
    assert len(first_comments["comments"]) == 100 and first_comments["meta"]["has_more"]

    records = gather(connector, email)
    assert [r.fields["subject"] for r in records] == ["Long chat"] + [f"chat {i}" for i in range(104)]
    assert len({r.fields["ticket_id"] for r in records}) == 105
    assert [m["body"] for m in records[0].fields["messages"]] == [f"message {i}" for i in range(150)]


# --- Erasing ---------------------------------------------------------------------------------------


def test_erase_removes_the_subjects_tickets_and_user_and_leaves_the_other_subject(loaded, helpdesk, raw, connector):
    kim, kim_promo = "kim@example.com", "kim+promo@example.com"
    load(helpdesk, kim, PROMO_CHATS, PROMO_FEEDBACK)
    load(helpdesk, kim_promo, PROMO_CHATS, PROMO_FEEDBACK)
    ticket_ids = {r.fields["ticket_id"] for r in gather(connector, kim) if "ticket_id" in r.fields}
    (user,) = search(raw, helpdesk, kim)
    other_before, sam_before = _shape(gather(connector, kim_promo)), _shape(gather(connector, SAM))

    receipt = connector.erase(Identity(email=kim))

    assert receipt.erased == {SUPPORT: 1, BOT_USAGE: 1, FEEDBACK: 1}
    assert gather(connector, kim) == []
    assert search(raw, helpdesk, kim) == []
    assert raw.get(f"{helpdesk}/api/v2/users/{user['id']}.json", timeout=5).status_code == 404
    deleted = raw.get(f"{helpdesk}/api/v2/deleted_users.json", timeout=5).json()["deleted_users"]
    assert user["id"] not in {u["id"] for u in deleted}  # permanently deleted, not just soft-deleted
    for ticket_id in ticket_ids:
        assert raw.get(f"{helpdesk}/api/v2/tickets/{ticket_id}/comments.json", timeout=5).status_code == 404
    assert _shape(gather(connector, kim_promo)) == other_before
    assert _shape(gather(connector, SAM)) == sam_before


def test_erase_twice_is_harmless(helpdesk, raw, connector):
    email = "twice@example.com"
    load(helpdesk, email, SAM_CHATS, SAM_FEEDBACK)

    first = connector.erase(Identity(email=email))
    second = connector.erase(Identity(email=email))

    assert first.erased == {SUPPORT: 2, BOT_USAGE: 1, FEEDBACK: 2}
    assert second.erased == {}
    assert gather(connector, email) == [] and search(raw, helpdesk, email) == []


def test_erase_of_some_categories_deletes_only_the_tickets_holding_them(helpdesk, raw, connector):
    email = "partial@example.com"
    load(helpdesk, email, SAM_CHATS, SAM_FEEDBACK)

    receipt = connector.erase(Identity(email=email), frozenset({FEEDBACK}))

    assert receipt.erased == {FEEDBACK: 2}
    assert [r.category for r in gather(connector, email)] == [SUPPORT, BOT_USAGE, SUPPORT]
    assert len(search(raw, helpdesk, email)) == 1


def test_erase_finishes_a_user_an_earlier_erasure_left_soft_deleted(helpdesk, raw, connector):
    email = "halfway@example.com"
    load(helpdesk, email, ROBIN_CHATS)
    (ticket,) = [r.fields["ticket_id"] for r in gather(connector, email)]
    assert raw.delete(f"{helpdesk}/api/v2/tickets/{ticket}.json", timeout=5).status_code == 204
    (user,) = search(raw, helpdesk, email)
    assert raw.delete(f"{helpdesk}/api/v2/users/{user['id']}.json", timeout=5).status_code == 200

    connector.erase(Identity(email=email))

    deleted = raw.get(f"{helpdesk}/api/v2/deleted_users.json", timeout=5).json()["deleted_users"]
    assert user["id"] not in {u["id"] for u in deleted}


# --- Errors ----------------------------------------------------------------------------------------


def test_a_wrong_token_is_a_permanent_error(loaded, helpdesk):
    connector = support_connector(helpdesk, token="wrong", timeout=5)
    try:
        with pytest.raises(PermanentError, match="401"):
            gather(connector, SAM)
        with pytest.raises(PermanentError, match="401"):
            connector.erase(Identity(email=SAM))
    finally:
        connector.close()


def test_a_stopped_service_is_a_transient_error():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused, and no one else takes the port
        connector = support_connector(f"http://127.0.0.1:{closed.getsockname()[1]}", timeout=5)
        with pytest.raises(TransientError, match="did not answer"):
            gather(connector, SAM)
        connector.close()


def test_a_service_that_does_not_answer_in_time_is_a_transient_error():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are accepted by the kernel, but nothing ever answers
        base_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        connector = support_connector(base_url, timeout=0.3)
        with pytest.raises(TransientError, match="timed out"):
            gather(connector, SAM)
        connector.close()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [(503, b'{"error": "down"}', TransientError), (429, b'{"error": "slow down"}', TransientError),
     (403, b'{"error": "Forbidden"}', PermanentError), (200, b"<html>not json</html>", PermanentError),
     (200, b'{"unexpected": []}', PermanentError)],
)
def test_helpdesk_answers_are_classified_transient_or_permanent(status, body, error):
    with answering(status, body) as port:
        connector = support_connector(f"http://127.0.0.1:{port}", timeout=5)
        try:
            with pytest.raises(error):
                gather(connector, SAM)
        finally:
            connector.close()


def test_the_environments_proxy_carries_the_calls_unless_no_proxy_names_the_host(monkeypatch):
    seen: list[tuple[str, str | None]] = []
    with answering(200, b'{"users": []}', seen) as port:  # a forward proxy: the request line holds the whole URL
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        proxied = support_connector("http://helpdesk.invalid", timeout=5)
        assert gather(proxied, SAM) == []
        proxied.close()
        ((path, authorization),) = seen
        assert path.startswith("http://helpdesk.invalid/api/v2/users/search.json?query=email") and authorization.startswith("Basic ")
        monkeypatch.setenv("NO_PROXY", "helpdesk.invalid")
        direct = support_connector("http://helpdesk.invalid", timeout=5)
        with pytest.raises(TransientError, match="did not answer"):  # straight to a host no one resolves
            gather(direct, SAM)
        direct.close()
        assert len(seen) == 1


# --- The service itself ----------------------------------------------------------------------------


def test_service_answers_401_without_valid_credentials(helpdesk):
    anonymous = requests.get(f"{helpdesk}/api/v2/users/search.json", params={"query": f"email:{SAM}"}, timeout=5)
    wrong = requests.get(f"{helpdesk}/api/v2/users/search.json", auth=(f"{ADMIN}/token", "nope"), timeout=5)
    password = requests.get(f"{helpdesk}/api/v2/users/search.json", auth=(ADMIN, TOKEN), timeout=5)  # not `{email}/token`

    for response in (anonymous, wrong, password):
        assert response.status_code == 401
        assert response.json() == {"error": "Couldn't authenticate you"}


def test_service_answers_404_json_for_unknown_routes_and_missing_records(helpdesk, raw):
    unknown = raw.get(f"{helpdesk}/api/v2/nothing-here.json", timeout=5)
    missing = raw.delete(f"{helpdesk}/api/v2/tickets/999999.json", timeout=5)

    assert unknown.status_code == 404 and unknown.json()["error"] == "InvalidEndpoint"
    assert missing.status_code == 404 and missing.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_service_answers_400_json_for_malformed_json(helpdesk, raw):
    headers = {"Content-Type": "application/json"}
    response = raw.post(f"{helpdesk}/api/v2/users.json", data=b'{"user": ', headers=headers, timeout=5)

    assert response.status_code == 400 and response.json()["error"] == "InvalidJSON"


def test_service_user_search_matches_the_whole_address_only(loaded, helpdesk, raw):
    assert [u["email"] for u in search(raw, helpdesk, SAM)] == [SAM]
    assert [u["email"] for u in search(raw, helpdesk, f"  {SAM.upper()} ")] == [SAM]
    assert search(raw, helpdesk, "sam@example") == []
    assert [u["email"] for u in search(raw, helpdesk, SAM_PROMO)] == [SAM_PROMO]
    assert [u["email"] for u in search(raw, helpdesk, ROBIN.lower())] == [ROBIN]

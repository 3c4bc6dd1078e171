"""The HTTP engine (connectors/http.py) over real sockets: Stripe's customers and charges, as
docs/systems/stripe.yaml describes them, against a stand-in speaking Stripe's shapes (cursor
pagination); a small CRM paging by offset and by link; servers that fail or say nothing; bad files.
The demo's helpdesk, a file of this kind too, is tested in test_support.py."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from connectors.base import ErasureReceipt, ErasureStep, Finding, Identity, PermanentError, Record, Retained, Source, TransientError
from connectors.http import HttpConnector
from connectors.systems import SystemsError, system_load

from ..support.answering import answering
from ..support.serving import Served
from ..support.stripe_standin import StripeStandin

ROOT = Path(__file__).resolve().parents[2]
STRIPE_FILE = ROOT / "docs" / "systems" / "stripe.yaml"
KEY = "sk_test_dsar0000000000000001"
PROVIDED, OBSERVED = Source("provided"), Source("observed")
KEPT_CHARGES = "Charges are payment records: Stripe keeps them, and tax law requires them to be kept"
WITH_SUBJECT = "erased only with the subject, when every category of the system is erased"
LONDON = {"city": "London", "country": "GB", "line1": "12 St James's Square", "line2": None, "postal_code": "SW1Y 4JH", "state": None}
MAY_1, MAY_2, JUNE_2 = 1714557600, 1714644000, 1717322400  # 2024-05-01, 2024-05-02 and 2024-06-02 at 10:00 UTC


@pytest.fixture(scope="module")
def stripe() -> Iterator[StripeStandin]:
    with StripeStandin(key=KEY) as standin:
        yield standin


def billing_connector(base_url: str, *, key: str = KEY, file: Path = STRIPE_FILE) -> HttpConnector:
    """The connector of the Stripe system file, on the API at `base_url`."""
    return system_load(file, {"STRIPE_BASE_URL": base_url, "STRIPE_SECRET_KEY": key}).connector()


@pytest.fixture
def billing(stripe) -> Iterator[HttpConnector]:
    connector = billing_connector(stripe.base_url)
    yield connector
    connector.close()


def ada(stripe: StripeStandin, email: str) -> tuple[str, str, str]:
    """A customer with two charges, in Stripe; their ids."""
    customer = stripe.customer_add(email=email, name="Ada Lovelace", created=MAY_1, phone="+44 20 7946 0000", address=LONDON)
    tea = stripe.charge_add(customer=customer, amount=1200, currency="gbp", created=MAY_2, description="Tea, monthly")
    cup = stripe.charge_add(customer=customer, amount=450, currency="gbp", created=JUNE_2, description="Cup",
                            brand="mastercard", last4="4444")
    return customer, tea, cup


def deletes(stripe: StripeStandin) -> list[str]:
    return [call for call in stripe.calls if call.startswith("DELETE")]


# --- Gathering -------------------------------------------------------------------------------------


def test_gather_finds_the_customer_by_email_and_reads_their_charges_by_category(stripe, billing):
    ada(stripe, "ada@example.com")
    ada_billing = {"address": LONDON, "email": "ada@example.com", "name": "Ada Lovelace", "phone": "+44 20 7946 0000"}

    assert list(billing.gather(Identity(email="ada@example.com"))) == [
        Record("name_contact", {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000", "address": LONDON,
                                "shipping": None},
               system="billing.customers", source=PROVIDED, collected_at=dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
        Record("interactions.account_history", {"description": "Cup", "amount": 450, "currency": "gbp",
                                                "created": "2024-06-02T10:00:00+00:00"},
               system="billing.charges", source=OBSERVED, collected_at=dt.datetime(2024, 6, 2, 10, tzinfo=dt.UTC)),
        Record("payment", {"payment_method_details.card": {"brand": "mastercard", "last4": "4444", "exp_month": 12, "exp_year": 2030},
                           "billing_details": ada_billing},
               system="billing.charges", source=OBSERVED, collected_at=dt.datetime(2024, 6, 2, 10, tzinfo=dt.UTC)),
        Record("interactions.account_history", {"description": "Tea, monthly", "amount": 1200, "currency": "gbp",
                                                "created": "2024-05-02T10:00:00+00:00"},
               system="billing.charges", source=OBSERVED, collected_at=dt.datetime(2024, 5, 2, 10, tzinfo=dt.UTC)),
        Record("payment", {"payment_method_details.card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
                           "billing_details": ada_billing},
               system="billing.charges", source=OBSERVED, collected_at=dt.datetime(2024, 5, 2, 10, tzinfo=dt.UTC)),
    ]
    assert billing.categories == {"name_contact", "interactions.account_history", "payment"}


def test_gather_finds_nothing_for_an_address_stripe_does_not_know(stripe, billing):
    ada(stripe, "known@example.com")

    assert list(billing.gather(Identity(email="unknown@example.com"))) == []


def test_charges_are_read_page_by_page_after_the_last_id_until_stripe_has_no_more(stripe, tmp_path):
    document = yaml.safe_load(STRIPE_FILE.read_text())
    document["lists"][0]["params"]["limit"] = 2
    (tmp_path / "billing.yaml").write_text(yaml.safe_dump(document))
    customer = stripe.customer_add(email="paged@example.com", name="Paged", created=MAY_1)
    charges = [stripe.charge_add(customer=customer, amount=100 * n, currency="eur", created=MAY_1 + n) for n in range(1, 6)]
    connector = billing_connector(stripe.base_url, file=tmp_path / "billing.yaml")
    stripe.calls.clear()

    records = list(connector.gather(Identity(email="paged@example.com")))
    connector.close()

    assert [r.fields["amount"] for r in records if r.category == "interactions.account_history"] == [500, 400, 300, 200, 100]
    assert [call for call in stripe.calls if "/v1/charges" in call] == [
        f"GET /v1/charges?customer={customer}&limit=2",
        f"GET /v1/charges?customer={customer}&limit=2&starting_after={charges[3]}",
        f"GET /v1/charges?customer={customer}&limit=2&starting_after={charges[1]}",
    ]


# --- Erasing ---------------------------------------------------------------------------------------


def test_erase_deletes_the_customer_and_keeps_the_charges_with_their_reason(stripe, billing):
    customer, tea, cup = ada(stripe, "erase@example.com")
    stripe.calls.clear()

    receipt = billing.erase(Identity(email="erase@example.com"))

    assert receipt.steps == [
        ErasureStep("billing.charges", "kept", "interactions.account_history", 2, reason=KEPT_CHARGES),
        ErasureStep("billing.charges", "kept", "payment", 2, reason=KEPT_CHARGES),
        ErasureStep("billing.customers", "deleted", "name_contact", 1),
    ]
    assert receipt.erased == {"name_contact": 1}
    assert receipt.retained == [Retained("interactions.account_history", 2, KEPT_CHARGES), Retained("payment", 2, KEPT_CHARGES)]
    assert deletes(stripe) == [f"DELETE /v1/customers/{customer}"]
    assert stripe.customers[customer] == {"id": customer, "object": "customer", "deleted": True}
    assert {tea, cup} <= stripe.charges.keys()
    assert list(billing.gather(Identity(email="erase@example.com"))) == []


def test_erase_again_finds_no_customer_and_deletes_nothing(stripe, billing):
    ada(stripe, "twice@example.com")
    billing.erase(Identity(email="twice@example.com"))
    stripe.calls.clear()

    assert billing.erase(Identity(email="twice@example.com")) == ErasureReceipt()
    assert deletes(stripe) == []


@pytest.mark.parametrize(("categories", "steps"), [
    ({"name_contact"}, [ErasureStep("billing.customers", "kept", "name_contact", 1, reason=WITH_SUBJECT)]),
    ({"payment", "video_recordings"}, [ErasureStep("billing.charges", "kept", "payment", 2, reason=KEPT_CHARGES)]),
])
def test_erase_of_some_categories_deletes_no_customer_and_says_what_it_kept(stripe, billing, categories, steps):
    email = f"some-{len(categories)}@example.com"
    ada(stripe, email)
    stripe.calls.clear()

    receipt = billing.erase(Identity(email=email), frozenset(categories))

    assert receipt.steps == steps and receipt.erased == {}
    assert deletes(stripe) == []
    assert len(list(billing.gather(Identity(email=email)))) == 5


def test_erase_preview_says_what_erase_would_do_and_changes_nothing(stripe, billing):
    ada(stripe, "preview@example.com")
    stripe.calls.clear()

    preview = billing.erase_preview(Identity(email="preview@example.com"))

    assert preview.steps == [
        ErasureStep("billing.charges", "kept", "interactions.account_history", 2, reason=KEPT_CHARGES),
        ErasureStep("billing.charges", "kept", "payment", 2, reason=KEPT_CHARGES),
        ErasureStep("billing.customers", "deleted", "name_contact", 1),
    ]
    assert deletes(stripe) == []
    assert len(list(billing.gather(Identity(email="preview@example.com")))) == 5


# --- Failures --------------------------------------------------------------------------------------


def test_a_refused_key_is_a_permanent_error_for_gather_and_erase(stripe):
    ada(stripe, "refused@example.com")
    connector = billing_connector(stripe.base_url, key="sk_test_wrong000000000009")
    try:
        with pytest.raises(PermanentError, match=r"^billing: the API answered 401 Unauthorized to GET /v1/customers: "):
            list(connector.gather(Identity(email="refused@example.com")))
        with pytest.raises(PermanentError, match="401"):
            connector.erase(Identity(email="refused@example.com"))
    finally:
        connector.close()
    assert deletes(stripe) == []


@pytest.mark.parametrize(("status", "body", "error", "message"), [
    (503, b'{"error": {"type": "api_error"}}', TransientError, "billing: the API answered 503 Service Unavailable to GET /v1/customers"),
    (429, b'{"error": {"type": "rate_limit_error"}}', TransientError, "billing: the API answered 429 Too Many Requests to GET /v1/customers"),
    (500, b"", TransientError, "billing: the API answered 500 Internal Server Error to GET /v1/customers"),
    (404, b'{"error": {}}', None, None),  # the lookup finds no such subject
    (400, b'{"error": {"type": "invalid_request_error"}}', PermanentError,
     'billing: the API answered 400 Bad Request to GET /v1/customers: {"error": {"type": "invalid_request_error"}}'),
    (200, b"<html>a portal</html>", PermanentError, "billing: the API's answer to GET /v1/customers is not JSON"),
    (200, b'{"object": "list"}', PermanentError, "billing: the answer to GET /v1/customers lacks a list of items at 'data'"),
    (200, b'{"data": [42]}', PermanentError, "billing: GET /v1/customers answered an item that is not an object"),
    (200, b'{"data": [{"name": "no id"}]}', PermanentError, "billing: the lookup answered an item without an id at 'id': None"),
])
def test_answers_are_classified_transient_or_permanent(status, body, error, message):
    with answering(status, body) as port:
        connector = billing_connector(f"http://127.0.0.1:{port}")
        try:
            if error is None:
                assert list(connector.gather(Identity(email="ada@example.com"))) == []
            else:
                with pytest.raises(error) as raised:
                    list(connector.gather(Identity(email="ada@example.com")))
                assert str(raised.value) == message
        finally:
            connector.close()


def test_a_refused_connection_is_transient():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused, and no one else takes the port
        connector = billing_connector(f"http://127.0.0.1:{closed.getsockname()[1]}")
        with pytest.raises(TransientError, match="^billing: the API did not answer GET /v1/customers: "):
            list(connector.gather(Identity(email="ada@example.com")))
        connector.close()


def test_a_server_that_does_not_answer_in_time_is_transient(tmp_path):
    document = yaml.safe_load(STRIPE_FILE.read_text())
    document["connection"]["timeout"] = 0.3
    (tmp_path / "billing.yaml").write_text(yaml.safe_dump(document))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are accepted by the kernel, but nothing ever answers
        connector = billing_connector(f"http://127.0.0.1:{silent.getsockname()[1]}", file=tmp_path / "billing.yaml")
        with pytest.raises(TransientError, match="timed out"):
            list(connector.gather(Identity(email="ada@example.com")))
        connector.close()


# --- Checking --------------------------------------------------------------------------------------


def test_check_finds_nothing_wrong_when_the_lookup_answers(stripe, billing):
    stripe.calls.clear()

    assert billing.check() == []
    assert stripe.calls == ["GET /v1/customers?email=systems-check%40example.invalid&limit=100"]


def test_check_reports_refused_credentials_as_a_problem_of_the_connection(stripe):
    connector = billing_connector(stripe.base_url, key="sk_test_wrong000000000009")

    assert connector.check() == [Finding(
        "connection.auth", 'billing: the API answered 401 Unauthorized to GET /v1/customers: {"error": {"type": '
        '"invalid_request_error", "message": "Invalid API Key provided: sk_test_****0009"}}')]
    connector.close()


def test_check_reports_a_silent_host_and_an_answer_that_does_not_fit_the_file():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = billing_connector(f"http://127.0.0.1:{closed.getsockname()[1]}")
        (finding,) = unreachable.check()
        unreachable.close()
    assert finding.where == "connection.base_url" and finding.what.startswith("billing: the API did not answer GET /v1/customers")
    with answering(200, b'{"customers": []}') as port:
        unfitting = billing_connector(f"http://127.0.0.1:{port}")
        assert unfitting.check() == [Finding("lookup", "billing: the answer to GET /v1/customers lacks a list of items at 'data'")]
        unfitting.close()
    with answering(404, b'{"error": {}}') as port:
        missing = billing_connector(f"http://127.0.0.1:{port}")
        assert missing.check() == [Finding("lookup", 'billing: the API answered 404 Not Found to GET /v1/customers: {"error": {}}')]
        missing.close()


# --- A CRM paging by offset and by link ------------------------------------------------------------


class Crm:
    """A small CRM API on a loopback port: contacts found by email and forgotten by a POST; a
    contact's orders paged by offset and limit, their notes by a link to the next page; an API key
    in `X-Api-Key`, and the API's version in `X-Crm-Version`."""

    def __init__(self) -> None:
        self.contacts = {7: {"id": 7, "email": "lin@example.com", "name": "Lin Chen", "phones": ["+44 20 1", "+44 77 3"]},
                         8: {"id": 8, "email": "max@example.com", "name": "Max Weber", "phones": ["+49 30 2"]}}
        self.orders = {n: {"id": n, "contact_id": 7, "item": f"order {n}", "placed_at": f"2024-03-0{n}T09:00:00Z"} for n in range(1, 6)}
        self.notes = {7: ["called", "emailed", "met"], 8: ["called"]}
        self.next_host: str | None = None  # where the notes' next link points, when not here
        self.calls: list[str] = []
        self.bodies: list[object] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                crm.calls.append(f"{self.command} {self.path}")
                if self.headers.get("X-Api-Key") != "crm-key":
                    return self._send(401, {"message": "bad key"})
                if self.headers.get("X-Crm-Version") != "2":
                    return self._send(400, {"message": "which version?"})
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/api/contacts":
                    return self._send(200, {"contacts": [c for c in crm.contacts.values()
                                                         if c["email"] == query.get("email") or query.get("phone") in c["phones"]]})
                if match := re.fullmatch(r"/api/contacts/(\d+)/orders", url.path):
                    mine = [o for o in crm.orders.values() if o["contact_id"] == int(match[1])]
                    offset, limit = int(query["offset"]), int(query["limit"])
                    return self._send(200, {"orders": mine[offset:offset + limit]})
                if match := re.fullmatch(r"/api/contacts/(\d+)/notes", url.path):
                    notes, page = crm.notes[int(match[1])], int(query.get("page", "1"))
                    host = crm.next_host or f"http://{self.headers['Host']}"
                    following = f"{host}{url.path}?page={page + 1}" if page * 2 < len(notes) else None
                    return self._send(200, {"notes": [{"text": t} for t in notes[(page - 1) * 2:page * 2]], "next": following})
                return self._send(404, {"message": "no such route"})

            def do_DELETE(self) -> None:
                crm.calls.append(f"{self.command} {self.path}")
                if match := re.fullmatch(r"/api/orders/(\d+)", self.path):
                    return self._send(204 if crm.orders.pop(int(match[1]), None) else 404, None)
                return self._send(404, {"message": "no such route"})

            def do_POST(self) -> None:
                crm.calls.append(f"{self.command} {self.path}")
                crm.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if match := re.fullmatch(r"/api/contacts/(\d+)/forget", self.path):
                    return self._send(202 if crm.contacts.pop(int(match[1]), None) else 404, {"status": "forgotten"})
                return self._send(404, {"message": "no such route"})

            def _send(self, status: int, payload: dict | None) -> None:
                body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_request(self, *args) -> None:
                pass

        self.served = Served(Handler)
        self.base_url = self.served.base_url

    def stop(self) -> None:
        self.served.stop()


CRM_FILE = """\
name: crm
kind: http
connection:
  base_url: ${CRM_URL}
  auth: {type: header, name: X-Api-Key, value: "${CRM_KEY}"}
  headers: {X-Crm-Version: "2"}
lookup: {name: contacts, path: /api/contacts, params: {email: "{email}"}, items: contacts, fields: {name: name_contact}}
lists:
  - name: orders
    path: /api/contacts/{id}/orders
    items: orders
    pagination: {type: offset, size: 2}
    collected_at: placed_at
    fields: {item: interactions.account_history}
    erase: {method: DELETE, path: "/api/orders/{item.id}"}
  - name: notes
    path: /api/contacts/{id}/notes
    items: notes
    pagination: {type: link, next: next}
    fields: {text: other_input}
    erase: keep
    reason: Notes are the company's record of its dealings
erase:
  - {method: POST, path: "/api/contacts/{id}/forget", body: {email: "{email}", reason: erasure request}}
"""


@pytest.fixture
def crm(tmp_path) -> Iterator[tuple[Crm, HttpConnector]]:
    server = Crm()
    (tmp_path / "crm.yaml").write_text(CRM_FILE)
    connector = system_load(tmp_path / "crm.yaml", {"CRM_URL": server.base_url, "CRM_KEY": "crm-key"}).connector()
    yield server, connector
    connector.close()
    server.stop()


def test_gather_pages_by_offset_and_by_link_and_sends_the_key_in_its_header(crm):
    server, connector = crm

    records = list(connector.gather(Identity(email="lin@example.com")))

    assert [(r.system, r.category, r.fields) for r in records] == [
        ("crm.contacts", "name_contact", {"name": "Lin Chen"}),
        *[("crm.orders", "interactions.account_history", {"item": f"order {n}"}) for n in (1, 2, 3, 4, 5)],
        ("crm.notes", "other_input", {"text": "called"}), ("crm.notes", "other_input", {"text": "emailed"}),
        ("crm.notes", "other_input", {"text": "met"}),
    ]
    assert records[1].collected_at == dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)
    assert server.calls == [
        "GET /api/contacts?email=lin%40example.com",
        "GET /api/contacts/7/orders?offset=0&limit=2", "GET /api/contacts/7/orders?offset=2&limit=2",
        "GET /api/contacts/7/orders?offset=4&limit=2",
        "GET /api/contacts/7/notes", "GET /api/contacts/7/notes?page=2",
    ]


def test_erase_reads_every_item_before_deleting_any_so_an_offset_skips_none(crm):
    server, connector = crm

    receipt = connector.erase(Identity(email="lin@example.com"))

    assert server.orders == {} and 7 not in server.contacts and 8 in server.contacts
    assert [call for call in server.calls if not call.startswith("GET")] == [
        *[f"DELETE /api/orders/{n}" for n in (1, 2, 3, 4, 5)], "POST /api/contacts/7/forget"]
    assert server.bodies == [{"email": "lin@example.com", "reason": "erasure request"}]
    assert receipt.steps == [
        ErasureStep("crm.orders", "deleted", "interactions.account_history", 5),
        ErasureStep("crm.notes", "kept", "other_input", 3, reason="Notes are the company's record of its dealings"),
        ErasureStep("crm.contacts", "deleted", "name_contact", 1),
    ]


@pytest.fixture
def crm_by_phone(tmp_path) -> Iterator[tuple[Crm, HttpConnector]]:
    server = Crm()
    (tmp_path / "crm.yaml").write_text(CRM_FILE.replace('params: {email: "{email}"}', 'by: phone, params: {phone: "{phone}"}'))
    system = system_load(tmp_path / "crm.yaml", {"CRM_URL": server.base_url, "CRM_KEY": "crm-key"})
    assert system.needs == frozenset({"phone"})
    connector = system.connector()
    yield server, connector
    connector.close()
    server.stop()


def test_a_lookup_by_another_identity_is_made_for_each_of_its_values_and_finds_each_item_once(crm_by_phone):
    server, connector = crm_by_phone

    records = list(connector.gather(Identity(email="unknown@example.com", ids={"phone": ["+44 20 1", "+44 77 3", "+1 555"]})))

    assert [(r.system, r.fields) for r in records if r.system == "crm.contacts"] == [("crm.contacts", {"name": "Lin Chen"})]
    assert len(records) == 9  # Lin's name, five orders and three notes, once
    assert [call for call in server.calls if call.startswith("GET /api/contacts?")] == [
        "GET /api/contacts?phone=%2B44+20+1", "GET /api/contacts?phone=%2B44+77+3", "GET /api/contacts?phone=%2B1+555"]


def test_a_subject_with_no_value_of_the_identity_a_lookup_is_by_is_not_looked_up(crm_by_phone):
    server, connector = crm_by_phone

    assert list(connector.gather(Identity(email="lin@example.com"))) == []
    assert connector.erase(Identity(email="lin@example.com")).steps == []
    assert server.calls == [] and 7 in server.contacts


def test_a_next_link_to_another_host_is_refused_so_the_key_never_leaves(crm):
    server, connector = crm
    server.next_host = "http://elsewhere.invalid"

    with pytest.raises(PermanentError, match=r"^crm: /api/contacts/\{id\}/notes gave a next page on another host than the API's: "
                                             r"http://elsewhere\.invalid/"):
        list(connector.gather(Identity(email="lin@example.com")))
    assert not any("elsewhere" in call for call in server.calls)


# --- The file --------------------------------------------------------------------------------------


def _edited(edit) -> dict:
    document = yaml.safe_load(STRIPE_FILE.read_text())
    edit(document)
    return document


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda d: d.pop("lookup"), "lookup: is required"),
    (lambda d: d["connection"].update(auth={"type": "digest"}), "connection.auth: needs a type: basic, bearer, header"),
    (lambda d: d["connection"].update(auth={"type": "bearer"}), "connection.auth.bearer.token: is required"),
    (lambda d: d["connection"].update(base_url="api.stripe.com"),
     "connection.base_url: 'api.stripe.com' is not an http:// or https:// URL without a query"),
    (lambda d: d["lists"][0]["fields"].update(amount="money"),
     "lists[0].fields.amount.category: 'money' is not a category of the taxonomy"),
    (lambda d: d["lists"][0]["fields"].update({"a..b": "payment"}),
     "lists[0].fields: 'a..b' is not a path: dotted names, each optionally with [field=value]"),
    (lambda d: d["lookup"]["params"].update(email="{id}"), "lookup.params.email: {id} is not known here (it may use {email})"),
    (lambda d: d["lookup"].update(by="id"), "lookup.by: 'id' names what the lookup finds, not an identity it is found by"),
    (lambda d: d["lookup"]["params"].update(phone="{phone}"), "lookup.params.phone: {phone} is not known here (it may use {email})"),
    (lambda d: d["erase"][0].update(path="/v1/customers/{item.id}"),
     "erase[0].path: {item.id} is not known here (it may use {email}, {id})"),
    (lambda d: d["lookup"].update(path="/v1/customers?email={email}"), "lookup.path: has a query: put its parameters under params"),
    (lambda d: d["lists"][0].pop("reason"), "lists[0]: `erase: keep` needs a reason, which the receipt gives"),
    (lambda d: d["lists"][0]["pagination"].update(next="next_page"),
     "lists[0].pagination.cursor: needs exactly one of next (a path in the answer) or last (a path in the page's last item)"),
    (lambda d: d["lists"][0].update(pagination={"type": "pages"}), "lists[0].pagination: needs a type: link, cursor, offset"),
    (lambda d: d["lists"][0].update(name="customers"), "lists[0].name: 'customers' is also the name of another listing"),
    (lambda d: d["lookup"].update(where={"email": {"like": "a%"}}), "lookup.where: a test is a value, {in: [values]} or {not: test}"),
    (lambda d: d.pop("erase"), "erase: nothing erases the records of lookup: give the calls that delete the subject, "
                               "an erase call for each item of a list, or `erase: keep` with a reason"),
    (lambda d: d.update(tables=[]), "tables: is not a setting of this kind of system"),
])
def test_a_bad_file_is_refused_with_the_place_and_the_problem(tmp_path, edit, problem):
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(_edited(edit), sort_keys=False))

    with pytest.raises(SystemsError) as raised:
        system_load(path, {"STRIPE_SECRET_KEY": KEY})
    assert raised.value.problems == [f"{path}: {problem}"]


def test_the_file_reads_secrets_from_the_environment_and_keeps_them_out_of_sight(tmp_path):
    system = system_load(STRIPE_FILE, {"STRIPE_SECRET_KEY": KEY})

    assert (system.kind, system.connector_class) == ("http", "connectors.http.HttpConnector")
    assert system.options["api"].connection.base_url == "https://api.stripe.com"
    assert KEY not in repr(system)
    with pytest.raises(SystemsError) as raised:
        system_load(STRIPE_FILE, {})
    assert raised.value.problems == [f"{STRIPE_FILE}: connection.auth.token: ${{STRIPE_SECRET_KEY}} is not set in the environment"]


# --- The stand-in itself ---------------------------------------------------------------------------


def test_the_standin_answers_in_stripes_shapes(stripe):
    customer = stripe.customer_add(email="shape@example.com", name="Shape", created=MAY_1)
    bearer = {"Authorization": f"Bearer {KEY}"}

    listed = requests.get(f"{stripe.base_url}/v1/customers", params={"email": "shape@example.com"}, headers=bearer, timeout=5).json()
    refused = requests.get(f"{stripe.base_url}/v1/customers", headers={"Authorization": "Bearer sk_test_nope00000000"}, timeout=5)
    deleted = requests.delete(f"{stripe.base_url}/v1/customers/{customer}", headers=bearer, timeout=5)
    again = requests.delete(f"{stripe.base_url}/v1/customers/{customer}", headers=bearer, timeout=5)

    assert (listed["object"], listed["url"], listed["has_more"]) == ("list", "/v1/customers", False)
    assert [c["id"] for c in listed["data"]] == [customer]
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Bearer realm="Stripe"'
    assert refused.json() == {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****0000"}}
    assert (deleted.status_code, deleted.json()) == (200, {"id": customer, "object": "customer", "deleted": True})
    assert again.status_code == 404 and again.json()["error"]["code"] == "resource_missing"


def test_the_lookup_provides_the_ids_it_finds_as_an_identity_for_other_systems(stripe, tmp_path):
    customer, _, _ = ada(stripe, "provides@example.com")
    file = tmp_path / "billing.yaml"
    file.write_text(STRIPE_FILE.read_text().replace("  name: customers\n", "  name: customers\n  provides: {stripe_customer: id}\n", 1))
    system = system_load(file, {"STRIPE_BASE_URL": stripe.base_url, "STRIPE_SECRET_KEY": KEY})
    assert system.provides == frozenset({"stripe_customer"})
    connector = system.connector()
    try:
        assert connector.identities_found(Identity(email="provides@example.com")) == {"stripe_customer": [customer]}
        assert connector.identities_found(Identity(email="nobody@example.com")) == {"stripe_customer": []}
    finally:
        connector.close()

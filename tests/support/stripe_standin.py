"""A stand-in for the part of Stripe's API a DSAR system uses, over a real socket: an HTTP server
in a thread of the test's process, answering in Stripe's documented shapes.

    GET    /v1/customers?email=&limit=&starting_after=   customers with exactly that email (case-sensitive)
    GET    /v1/charges?customer=&limit=&starting_after=  charges, of one customer when `customer` is given
    DELETE /v1/customers/{id}                            {"id": ..., "object": "customer", "deleted": true}

Every call needs `Authorization: Bearer KEY`; without it, or with another key, the answer is 401.
Lists are list objects (`object: list`, `url`, `has_more`, `data`), newest first, `limit` 1 to 100
(default 10), the next page asked for with `starting_after` the last object's id. Errors are
`{"error": {"type", "message", ...}}`: 400 for a bad parameter, 401, and 404 `resource_missing`.
A deleted customer is gone from lists and cannot be deleted again; its charges stay, as Stripe's do.
The test seeds it directly (`customer_add`, `charge_add`) and reads `calls` to see what was asked.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .serving import Served

MAX_LIMIT = 100


class _Error(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(status, error)
        self.status, self.error = status, error


def _invalid(param: str, message: str) -> _Error:
    return _Error(400, {"type": "invalid_request_error", "param": param, "message": message})


class StripeStandin:
    """The server and its data; use it as a context manager, or `start()` and `stop()`."""

    def __init__(self, *, key: str) -> None:
        self.key = key
        self.customers: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []  # "METHOD /path?query", in the order they came
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()
        self._served: Served | None = None

    @property
    def base_url(self) -> str:
        return self._served.base_url

    def start(self) -> StripeStandin:
        self._served = Served(server=_Server(self))
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> StripeStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- Seeding ---

    def customer_add(self, *, email: str, name: str | None, created: int, phone: str | None = None,
                     address: dict[str, str | None] | None = None) -> str:
        """A customer as Stripe returns one; its id."""
        customer_id = f"cus_T{next(self._sequence):05d}"
        with self._lock:
            self.customers[customer_id] = {
                "id": customer_id, "object": "customer", "address": address, "balance": 0, "created": created,
                "currency": None, "delinquent": False, "description": None, "email": email, "livemode": False,
                "metadata": {}, "name": name, "phone": phone, "preferred_locales": [], "shipping": None, "tax_exempt": "none",
            }
        return customer_id

    def charge_add(self, *, customer: str, amount: int, currency: str, created: int, description: str | None = None,
                   brand: str = "visa", last4: str = "4242") -> str:
        """A succeeded card charge as Stripe returns one; its id."""
        charge_id = f"ch_T{next(self._sequence):05d}"
        with self._lock:
            owner = self.customers[customer]
            self.charges[charge_id] = {
                "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
                "billing_details": {"address": owner["address"], "email": owner["email"], "name": owner["name"], "phone": owner["phone"]},
                "captured": True, "created": created, "currency": currency, "customer": customer, "description": description,
                "livemode": False, "metadata": {}, "paid": True,
                "payment_method_details": {"type": "card", "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2030}},
                "receipt_email": owner["email"], "refunded": False, "status": "succeeded",
            }
        return charge_id

    # --- The API ---

    def answer(self, method: str, target: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The status and body of one call."""
        with self._lock:
            self.calls.append(f"{method} {target}")
            url = urlsplit(target)
            query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
            try:
                self._authenticate(authorization)
                if method == "GET" and url.path == "/v1/customers":
                    live = [c for c in self.customers.values() if not c.get("deleted")]
                    found = [c for c in live if "email" not in query or c["email"] == query["email"]]  # case-sensitive, as Stripe's
                    return 200, self._list("/v1/customers", query, found)
                if method == "GET" and url.path == "/v1/charges":
                    charges = [c for c in self.charges.values() if "customer" not in query or c["customer"] == query["customer"]]
                    return 200, self._list("/v1/charges", query, charges)
                if method == "DELETE" and url.path.startswith("/v1/customers/"):
                    return 200, self._customer_delete(url.path.removeprefix("/v1/customers/"))
                raise _Error(404, {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {url.path})."})
            except _Error as error:
                return error.status, {"error": error.error}

    def _authenticate(self, authorization: str | None) -> None:
        scheme, _, key = (authorization or "").partition(" ")
        if not authorization:
            raise _Error(401, {"type": "invalid_request_error", "message": "No API key provided: send it as Authorization: Bearer KEY."})
        if scheme.lower() != "bearer" or key != self.key:
            shown = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
            raise _Error(401, {"type": "invalid_request_error", "message": f"Invalid API Key provided: {shown}"})

    def _list(self, url: str, query: dict[str, str], objects: list[dict[str, Any]]) -> dict[str, Any]:
        limit_text = query.get("limit", "10")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise _invalid("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
        newest_first = sorted(objects, key=lambda o: (o["created"], o["id"]), reverse=True)
        if "starting_after" in query:
            ids = [o["id"] for o in newest_first]
            if query["starting_after"] not in ids:
                raise _invalid("starting_after", f"No such object: '{query['starting_after']}'")
            newest_first = newest_first[ids.index(query["starting_after"]) + 1:]
        page = newest_first[:int(limit_text)]
        return {"object": "list", "url": url, "has_more": len(newest_first) > len(page), "data": page}

    def _customer_delete(self, customer_id: str) -> dict[str, Any]:
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            raise _Error(404, {"type": "invalid_request_error", "code": "resource_missing", "param": "id",
                               "message": f"No such customer: '{customer_id}'"})
        self.customers[customer_id] = {"id": customer_id, "object": "customer", "deleted": True}
        return {"id": customer_id, "object": "customer", "deleted": True}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: StripeStandin) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        """Every method alike: the stand-in says which it answers."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body = self.server.standin.answer(self.command, self.path, self.headers.get("Authorization"))
        data = json.dumps(body).encode()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="Stripe"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_DELETE = do_POST = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: the test reads `calls` instead."""

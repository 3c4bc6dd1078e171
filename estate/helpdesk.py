"""The demo estate's helpdesk: a small HTTP service speaking a documented subset of the Zendesk
Support REST API v2, so the support connector talks to it as it would to Zendesk. Standard library
only (the estate needs nothing installed to run it), and no Django.

    python -m estate.helpdesk --host 127.0.0.1 --port 8025 --db helpdesk.sqlite3 --email ADMIN --token TOKEN

Every call needs Zendesk's API-token authentication: HTTP Basic with `{email}/token` and the token.
Routes (all under /api/v2, all `.json`): POST users; GET users/search?query=email:ADDRESS (exact,
case-insensitive); GET and DELETE users/{id} (a soft delete: the user moves to deleted users); GET
deleted_users; DELETE deleted_users/{id} (permanent, Zendesk's GDPR erasure); POST imports/tickets
(the Ticket Import API, comments included); GET users/{id}/tickets/requested; GET
tickets/{id}/comments (with `include=users`, the page's live authors side-loaded as `users`);
DELETE tickets/{id}. Lists use Zendesk's cursor pagination: `page[size]`
(1-100, default 100), `page[after]` or `page[before]`; answers carry `meta` (`has_more`,
`after_cursor`, `before_cursor`) and `links` (`next`, `prev`).

Where it differs from Zendesk, on purpose: a deleted ticket is gone at once (Zendesk keeps it 30 days
among deleted tickets); custom field ids may be strings; user search understands only `email:`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hmac
import json
import re
import sqlite3
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT, role TEXT NOT NULL,
    user_fields TEXT NOT NULL, created_at TEXT NOT NULL, deleted_at TEXT
);
-- Like Zendesk, one live user per address; the index also settles two concurrent creations.
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, requester_id INTEGER NOT NULL, subject TEXT, status TEXT NOT NULL,
    tags TEXT NOT NULL, satisfaction_rating TEXT, custom_fields TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_requester ON tickets (requester_id, id);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    author_id INTEGER NOT NULL, body TEXT NOT NULL, public INTEGER NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_ticket ON comments (ticket_id, id);
"""

PAGE_SIZE = 100
ROLES = ("end-user", "agent", "admin")
SCORES = ("offered", "unoffered", "good", "bad")
LIVE, DELETED = "deleted_at IS NULL", "deleted_at IS NOT NULL"


class ApiError(Exception):
    """An answer other than success, with Zendesk's error body."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status, payload)
        self.status, self.payload = status, payload


def _not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


def _invalid(field: str, description: str, error: str = "InvalidValue") -> ApiError:
    details = {field: [{"description": description, "error": error}]}
    return ApiError(422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details})


@contextmanager
def _database(path: str) -> Iterator[sqlite3.Connection]:
    """One connection and one transaction per request: threads never share a connection."""
    with closing(sqlite3.connect(path, timeout=10)) as db, db:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        yield db


def helpdesk_schema(path: str) -> None:
    """Create the helpdesk's tables in the SQLite file at `path` if they are not there yet."""
    with closing(sqlite3.connect(path)) as db:
        db.executescript(SCHEMA)


def _time(value: Any = None, field: str = "") -> str:
    """An ISO 8601 time as Zendesk writes it (UTC, seconds), now if None; naive times are taken as UTC."""
    try:
        parsed = dt.datetime.now(dt.UTC) if value is None else dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise _invalid(field, f"{value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object(body: Any, key: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise ApiError(400, {"error": "InvalidParameter", "description": f"the body must be an object with a {key!r} object"})
    return body[key]


# --- Rendering rows as Zendesk does ---------------------------------------------------------------


def _user(row: sqlite3.Row) -> dict[str, Any]:
    user = dict(row)
    user["active"] = user.pop("deleted_at") is None
    user["user_fields"] = json.loads(user["user_fields"])
    return user


def _ticket(row: sqlite3.Row) -> dict[str, Any]:
    ticket = dict(row)
    for key in ("tags", "satisfaction_rating", "custom_fields"):  # stored as JSON text
        ticket[key] = ticket[key] and json.loads(ticket[key])
    return ticket


def _comment(row: sqlite3.Row) -> dict[str, Any]:
    comment = dict(row)
    del comment["ticket_id"]
    comment["public"] = bool(comment["public"])
    return comment


# --- Cursor pagination ----------------------------------------------------------------------------


def _cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode()


def _cursor_id(cursor: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "id" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError(400, {"error": "InvalidPaginationParameter", "description": "the cursor is not one this API gave"})


@dataclass(frozen=True)
class Call:
    """One request, as the route functions see it."""

    db: sqlite3.Connection
    ids: tuple[int, ...]
    query: dict[str, str]
    body: Any
    url: str  # this route's absolute URL without the query, for pagination links

    def page(self, key: str, where: str, params: list[Any], table: str, render: Callable[[sqlite3.Row], dict]) -> dict[str, Any]:
        """One page of `table` rows matching `where`, in id order, keyed by id (a stable cursor)."""
        size_text = self.query.get("page[size]", str(PAGE_SIZE))
        if not size_text.isdigit() or not 1 <= int(size_text) <= PAGE_SIZE:
            raise ApiError(400, {"error": "InvalidPaginationParameter", "description": f"page[size] must be 1 to {PAGE_SIZE}"})
        size = int(size_text)
        if "page[before]" in self.query:
            sql = f"SELECT * FROM {table} WHERE {where} AND id < ? ORDER BY id DESC LIMIT ?"
            rows = self.db.execute(sql, [*params, _cursor_id(self.query["page[before]"]), size + 1]).fetchall()
            has_more, rows = len(rows) > size, rows[:size][::-1]
        else:
            after = _cursor_id(self.query["page[after]"]) if "page[after]" in self.query else 0
            sql = f"SELECT * FROM {table} WHERE {where} AND id > ? ORDER BY id LIMIT ?"
            rows = self.db.execute(sql, [*params, after, size + 1]).fetchall()
            has_more, rows = len(rows) > size, rows[:size]
        after_cursor = _cursor(rows[-1]["id"]) if rows else None
        before_cursor = _cursor(rows[0]["id"]) if rows else None
        return {
            key: [render(row) for row in rows],
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": after_cursor and f"{self.url}?{urlencode({'page[after]': after_cursor, 'page[size]': size})}",
                "prev": before_cursor and f"{self.url}?{urlencode({'page[before]': before_cursor, 'page[size]': size})}",
            },
        }

    def row(self, table: str, where: str = "TRUE") -> sqlite3.Row:
        """The row of `table` whose id is in the path, or 404."""
        row = self.db.execute(f"SELECT * FROM {table} WHERE id = ? AND {where}", [self.ids[0]]).fetchone()
        if row is None:
            raise _not_found()
        return row


# --- Routes ---------------------------------------------------------------------------------------


def user_create(call: Call) -> tuple[int, dict]:
    spec = _object(call.body, "user")
    name, email, role = spec.get("name"), spec.get("email"), spec.get("role", "end-user")
    fields = spec.get("user_fields", {})
    if not isinstance(name, str) or not name.strip():
        raise _invalid("name", "Name: cannot be blank", "BlankValue")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        raise _invalid("email", f"Email: {email!r} is not properly formatted")
    if role not in ROLES:
        raise _invalid("role", f"Role: must be one of {', '.join(ROLES)}")
    if not isinstance(fields, dict):
        raise _invalid("user_fields", "User fields: must be an object")
    try:
        cursor = call.db.execute(
            "INSERT INTO users (name, email, role, user_fields, created_at) VALUES (?, ?, ?, ?, ?)",
            [name.strip(), email and email.strip(), role, json.dumps(fields), _time()],
        )
    except sqlite3.IntegrityError:
        raise _invalid("email", f"Email: {email} is already being used by another user", "DuplicateValue") from None
    return 201, {"user": _user(call.db.execute("SELECT * FROM users WHERE id = ?", [cursor.lastrowid]).fetchone())}


def user_search(call: Call) -> tuple[int, dict]:
    query = call.query.get("query", "").strip()
    if not query.lower().startswith("email:"):
        raise ApiError(400, {"error": "InvalidParameter", "description": "users are searched only by query=email:ADDRESS"})
    address = query[len("email:"):].strip().strip('"').strip()
    rows = call.db.execute(f"SELECT * FROM users WHERE lower(email) = lower(?) AND {LIVE} ORDER BY id", [address])
    return 200, {"users": [_user(row) for row in rows]}


def user_show(call: Call) -> tuple[int, dict]:
    return 200, {"user": _user(call.row("users", LIVE))}


def user_delete(call: Call) -> tuple[int, dict]:
    call.row("users", LIVE)
    call.db.execute("UPDATE users SET deleted_at = ? WHERE id = ?", [_time(), call.ids[0]])
    return 200, {"user": _user(call.row("users"))}


def deleted_user_list(call: Call) -> tuple[int, dict]:
    return 200, call.page("deleted_users", DELETED, [], "users", _user)


def deleted_user_purge(call: Call) -> tuple[int, dict]:
    user = _user(call.row("users", DELETED))
    call.db.execute("DELETE FROM users WHERE id = ?", [call.ids[0]])
    return 200, {"deleted_user": user}


def _user_exists(db: sqlite3.Connection, user_id: Any) -> bool:
    found = isinstance(user_id, int) and db.execute(f"SELECT 1 FROM users WHERE id = ? AND {LIVE}", [user_id]).fetchone()
    return bool(found)


def ticket_import(call: Call) -> tuple[int, dict]:
    spec = _object(call.body, "ticket")
    if not _user_exists(call.db, spec.get("requester_id")):
        raise _invalid("requester_id", "Requester: no such user")
    tags, comments, fields = spec.get("tags", []), spec.get("comments", []), spec.get("custom_fields", [])
    rating = spec.get("satisfaction_rating")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise _invalid("tags", "Tags: must be a list of strings")
    if not isinstance(fields, list) or not all(isinstance(f, dict) and "id" in f for f in fields):
        raise _invalid("custom_fields", "Custom fields: must be a list of objects with an id")
    if rating is not None and (not isinstance(rating, dict) or rating.get("score") not in SCORES):
        raise _invalid("satisfaction_rating", f"Satisfaction rating: score must be one of {', '.join(SCORES)}")
    if not isinstance(comments, list):
        raise _invalid("comments", "Comments: must be a list")
    created_at = _time(spec.get("created_at"), "created_at")
    ticket_id = call.db.execute(
        "INSERT INTO tickets (requester_id, subject, status, tags, satisfaction_rating, custom_fields, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [spec["requester_id"], spec.get("subject"), spec.get("status", "new"), json.dumps(tags),
         json.dumps(rating) if rating else None, json.dumps(fields), created_at],
    ).lastrowid
    for index, comment in enumerate(comments):
        where = f"comments[{index}]"
        body = comment.get("value", comment.get("body")) if isinstance(comment, dict) else None
        if not isinstance(body, str):
            raise _invalid(where, "Comment: needs a value")
        if not _user_exists(call.db, comment.get("author_id")):
            raise _invalid(where, "Comment: author_id is no such user")
        at = _time(comment.get("created_at", created_at), where)
        call.db.execute(
            "INSERT INTO comments (ticket_id, author_id, body, public, created_at) VALUES (?, ?, ?, ?, ?)",
            [ticket_id, comment["author_id"], body, bool(comment.get("public", True)), at],
        )
    return 201, {"ticket": _ticket(call.db.execute("SELECT * FROM tickets WHERE id = ?", [ticket_id]).fetchone())}


def ticket_requested_list(call: Call) -> tuple[int, dict]:
    call.row("users", LIVE)
    return 200, call.page("tickets", "requester_id = ?", [call.ids[0]], "tickets", _ticket)


def comment_list(call: Call) -> tuple[int, dict]:
    call.row("tickets")
    page = call.page("comments", "ticket_id = ?", [call.ids[0]], "comments", _comment)
    if "users" in call.query.get("include", "").split(","):
        # Zendesk's side-loading: the page's authors come with it, so no client asks for each one.
        authors = sorted({comment["author_id"] for comment in page["comments"]})
        rows = call.db.execute(f"SELECT * FROM users WHERE id IN ({','.join('?' * len(authors))}) AND {LIVE} ORDER BY id", authors) if authors else []
        page["users"] = [_user(row) for row in rows]
    return 200, page


def ticket_delete(call: Call) -> tuple[int, None]:
    call.row("tickets")
    call.db.execute("DELETE FROM tickets WHERE id = ?", [call.ids[0]])  # its comments go with it (ON DELETE CASCADE)
    return 204, None


ROUTES: list[tuple[str, re.Pattern, Callable[[Call], tuple[int, dict | None]]]] = [
    (method, re.compile(rf"/api/v2/{pattern}\.json"), action)
    for method, pattern, action in [
        ("POST", r"users", user_create),
        ("GET", r"users/search", user_search),
        ("GET", r"users/(\d+)", user_show),
        ("DELETE", r"users/(\d+)", user_delete),
        ("GET", r"deleted_users", deleted_user_list),
        ("DELETE", r"deleted_users/(\d+)", deleted_user_purge),
        ("POST", r"imports/tickets", ticket_import),
        ("GET", r"users/(\d+)/tickets/requested", ticket_requested_list),
        ("GET", r"tickets/(\d+)/comments", comment_list),
        ("DELETE", r"tickets/(\d+)", ticket_delete),
    ]
]


# --- HTTP -----------------------------------------------------------------------------------------


class HelpdeskServer(ThreadingHTTPServer):
    """The HTTP server, holding where the database is and the one account allowed in."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, db_path: str, email: str, token: str) -> None:
        self.db_path = db_path
        self.credentials = f"{email}/token:{token}".encode()
        super().__init__(address, HelpdeskHandler)


class HelpdeskHandler(BaseHTTPRequestHandler):
    """Authenticates, routes, runs the route in one transaction and answers JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive, so a client paging through tickets reuses its connection
    disable_nagle_algorithm = True  # headers and body are two writes; Nagle would hold the body ~40 ms on keep-alive
    server: HelpdeskServer

    def do_GET(self) -> None:
        """Every method is handled alike: the routes table says which method each path takes."""
        self._handle()

    do_POST = do_DELETE = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: the demo runs quietly; errors are still written to stderr."""

    def _handle(self) -> None:
        # The body is read whatever the answer, or it would be taken for the next request on this connection.
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authenticated():
            self._send(401, {"error": "Couldn't authenticate you"}, {"WWW-Authenticate": 'Basic realm="Web Password"'})
            return
        url = urlsplit(self.path)
        matches = ((action, pattern.fullmatch(url.path)) for method, pattern, action in ROUTES if method == self.command)
        route = next(((action, match) for action, match in matches if match), None)
        if route is None:
            self._send(404, {"error": "InvalidEndpoint", "description": "Not found"})
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError as error:
            self._send(400, {"error": "InvalidJSON", "description": f"the body is not JSON: {error}"})
            return
        action, match = route
        query = {key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            with _database(self.server.db_path) as db:
                status, payload = action(Call(db, tuple(int(i) for i in match.groups()), query, body, self._base() + url.path))
        except ApiError as error:
            status, payload = error.status, error.payload
        except Exception:  # noqa: BLE001 (any failure is answered with a 500, never a dropped connection)
            traceback.print_exc(file=sys.stderr)
            status, payload = 500, {"error": "InternalError", "description": "the helpdesk failed; see its log"}
        self._send(status, payload)

    def _authenticated(self) -> bool:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        try:
            given = base64.b64decode(value, validate=True)
        except binascii.Error:
            return False
        return scheme.lower() == "basic" and hmac.compare_digest(given, self.server.credentials)

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _send(self, status: int, payload: dict | None, headers: dict[str, str] | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> None:
    """Run the helpdesk until interrupted."""
    parser = argparse.ArgumentParser(description="The demo estate's helpdesk (a Zendesk Support API v2 subset).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="0 picks a free port (printed on start)")
    parser.add_argument("--db", required=True, help="the SQLite file, created if missing")
    parser.add_argument("--email", required=True, help="the admin's email, the API-token username before /token")
    parser.add_argument("--token", required=True, help="the API token")
    args = parser.parse_args(argv)
    helpdesk_schema(args.db)
    server = HelpdeskServer((args.host, args.port), db_path=args.db, email=args.email, token=args.token)
    host, port = server.server_address[:2]
    print(f"helpdesk listening on http://{host}:{port}", flush=True)
    with server, suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

"""The support chats connector: a helpdesk reached through the Zendesk Support REST API v2.

The subject is the helpdesk user (or users) with the identity's email address. Every ticket they
requested is one support conversation; its comments are the messages, written by the subject, by
agents, or by a bot (an agent whose user field `bot` is true). Tickets tagged `feedback` carry a
rating (custom field `rating`) and the subject's words (the satisfaction rating's comment).

Tickets and comments are read page by page with Zendesk's cursor pagination, so memory stays bounded
by one page of tickets and one ticket's messages, whatever the subject's history.
"""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3

from .base import PROVIDED, Connector, ErasureReceipt, Identity, PermanentError, Record, TransientError

SUPPORT = "interactions.support"
BOT_USAGE = "interactions.bot_usage"
FEEDBACK = "feedback_ratings"
FEEDBACK_TAG = "feedback"
RATING_FIELD = "rating"  # the id of the ticket field holding a feedback rating
PAGE_SIZE = 100  # Zendesk's largest page


class ZendeskClient:
    """A session on a Zendesk Support API v2: API-token authentication, a timeout on every call,
    and failures turned into the connector errors (transient ones are worth retrying).

    It speaks HTTP through urllib3's connection pools, not through requests on top of them: a
    typical subject's task (four calls) cost the worker 11.6 M instructions through requests and
    6.7 M through urllib3 alone, 5 % of an access request. As requests would, it takes the environment's
    proxy (`HTTPS_PROXY`, `NO_PROXY`, ...), once, and trusts the system's certificate authorities
    (or the bundle OpenSSL's `SSL_CERT_FILE` names); it follows no redirect and retries nothing itself (the task's
    retries do)."""

    def __init__(self, *, base_url: str, email: str, token: str, timeout: float = 10.0, name: str = "support") -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.headers = {**urllib3.make_headers(basic_auth=f"{email}/token:{token}"), "Accept": "application/json"}
        options = {"timeout": urllib3.Timeout(timeout), "retries": False, "maxsize": 4}
        proxy = _environ_proxy(self.base_url)
        self.pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)

    def call(
        self, method: str, path: str, *, params: dict | None = None, json: dict | None = None, missing_ok: bool = False
    ) -> Any:
        """One API call on `/api/v2/{path}`; its decoded JSON answer, or None for 204 (and for 404
        when `missing_ok`, so that removing what is already gone succeeds)."""
        what = f"{method} /api/v2/{path}"
        url = f"{self.base_url}/api/v2/{path}"
        if params:
            url += "?" + urlencode(params)
        try:
            response = self.pool.request(method, url, json=json, headers=self.headers)
        except urllib3.exceptions.LocationValueError as error:
            raise PermanentError(f"{self.name}: {what} could not be sent: {error}") from error
        except urllib3.exceptions.HTTPError as error:  # refused, reset, timed out, cut short
            raise TransientError(f"{self.name}: the helpdesk did not answer {what}: {error}") from error
        status = response.status
        if status == 204 or (status == 404 and missing_ok):
            return None
        if status == 429 or status >= 500:
            raise TransientError(f"{self.name}: the helpdesk answered {status} {response.reason} to {what}")
        if status >= 400:
            detail = response.data[:200].decode(errors="replace")
            raise PermanentError(f"{self.name}: the helpdesk answered {status} {response.reason} to {what}: {detail}")
        try:
            return response.json()
        except ValueError as error:
            raise PermanentError(f"{self.name}: the helpdesk's answer to {what} is not JSON") from error

    def items(self, path: str, key: str, *, users: dict[int, dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, fetching the next page only when this one is used up.
        With `users`, each page asks for the users it refers to side-loaded (Zendesk's `include=users`)
        and puts them in `users` by id before its items are yielded."""
        include = {"include": "users"} if users is not None else {}
        params: dict[str, Any] = {"page[size]": PAGE_SIZE, **include}
        cursors: set[str] = set()
        while True:
            page = self.call("GET", path, params=params)
            items, meta = _get(page, key, list), _get(page, "meta", dict)
            if users is not None:
                for user in _optional(page.get("users"), list, f"{path} users"):
                    users[_checked(user, f"{path} users")["id"]] = user
            for item in items:
                yield _checked(item, path)
            if not meta.get("has_more"):
                return
            cursor = meta.get("after_cursor")
            if not isinstance(cursor, str) or not cursor or cursor in cursors:
                raise PermanentError(f"{self.name}: {path} says it has more but gives no new cursor ({cursor!r})")
            cursors.add(cursor)
            params = {"page[size]": PAGE_SIZE, "page[after]": cursor, **include}

    def users_by_email(self, email: str) -> list[dict[str, Any]]:
        """The live users with exactly this address (compared trimmed and case-insensitively)."""
        wanted = email.strip().lower()
        users = _get(self.call("GET", "users/search.json", params={"query": f"email:{wanted}"}), "users", list)
        # Zendesk's search is a search, not a lookup: only an exact address is the subject
        # (alice+x@example.com is someone else than alice@example.com).
        users = [_checked(user, "users/search") for user in users]
        return [user for user in users if str(user.get("email") or "").strip().lower() == wanted]

    def close(self) -> None:
        """Close the pool's connections."""
        self.pool.clear()


def _environ_proxy(url: str) -> str | None:
    """The proxy the environment names for `url`, unless NO_PROXY exempts its host."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


def _get(payload: Any, key: str, kind: type) -> Any:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), kind):
        raise PermanentError(f"support: the helpdesk's answer lacks {key!r} ({kind.__name__})")
    return payload[key]


def _checked(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        raise PermanentError(f"support: {where} answered an item without an id")
    return item


def _optional(value: Any, kind: type, what: str) -> Any:
    """A field the helpdesk may leave out: absent or null gives an empty one, any other type is
    a malformed answer."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise PermanentError(f"support: the helpdesk's {what} is not a {kind.__name__}: {value!r:.80}")
    return value


def _user_id(value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise PermanentError(f"support: the helpdesk gave a user id that is not a number: {value!r:.80}")
    return value


def _time(value: Any) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise PermanentError(f"support: the helpdesk gave a time that is not ISO 8601: {value!r}") from None


class ZendeskConnector(Connector):
    """Reads and erases a subject's support chats, bot conversations and feedback in a helpdesk
    speaking the Zendesk Support API v2. Options: `base_url`, `email` and `token` (an API token of
    an admin), `timeout` in seconds for each call (default 10)."""

    name = "support"
    categories = frozenset({SUPPORT, BOT_USAGE, FEEDBACK})

    def __init__(
        self, *, name: str | None = None, base_url: str, email: str, token: str, timeout: float = 10.0, **options: Any
    ) -> None:
        super().__init__(name=name, **options)  # the token stays out of `options`, which may be shown
        self.client = ZendeskClient(base_url=base_url, email=email, token=token, timeout=timeout, name=self.name)

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    def gather(self, identity: Identity) -> Iterator[Record]:
        """Yield, for each ticket the subject requested: an `interactions.support` record with its
        customer and agent messages, an `interactions.bot_usage` record when a bot took part, and a
        `feedback_ratings` record when it is tagged `feedback`."""
        speakers: dict[int, tuple[str, str | None]] = {}
        for user in self.client.users_by_email(identity.email):
            for ticket in self.client.items(f"users/{user['id']}/tickets/requested.json", "tickets"):
                yield from self._ticket_records(ticket, speakers)

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Make sure the subject's tickets in `categories` (None: all) are absent, and with every
        category the subject's helpdesk user too (deleted, then permanently deleted). A ticket is
        the smallest thing the helpdesk deletes: one holding any requested category is deleted whole,
        and the receipt counts every record it held. Safe to repeat."""
        everything = categories is None or self.categories <= categories
        wanted = self.categories if categories is None else self.categories & categories
        receipt = ErasureReceipt()
        speakers: dict[int, tuple[str, str | None]] = {}
        for user in self.client.users_by_email(identity.email):
            # Deleting behind the cursor is safe: the next page starts after the last ticket seen.
            for ticket in self.client.items(f"users/{user['id']}/tickets/requested.json", "tickets"):
                held = {record.category for record in self._ticket_records(ticket, speakers)}
                if everything or held & wanted:
                    self.client.call("DELETE", f"tickets/{ticket['id']}.json", missing_ok=True)
                    for category in held:
                        receipt.add_erased(category, 1)
            if everything:
                self.client.call("DELETE", f"users/{user['id']}.json", missing_ok=True)
                self.client.call("DELETE", f"deleted_users/{user['id']}.json", missing_ok=True)
        if everything:
            self._deleted_users_purge(identity)
        return receipt

    def _deleted_users_purge(self, identity: Identity) -> None:
        """Permanently delete the subject's users left soft-deleted by an erasure that stopped
        between its two deletions: search no longer finds them, but they still hold the address."""
        for user in self.client.items("deleted_users.json", "deleted_users"):
            if str(user.get("email") or "").strip().lower() == identity.email.strip().lower():
                self.client.call("DELETE", f"deleted_users/{user['id']}.json", missing_ok=True)

    def _ticket_records(self, ticket: dict[str, Any], speakers: dict[int, tuple[str, str | None]]) -> Iterator[Record]:
        conversation: list[dict[str, Any]] = []  # the customer and the agents
        bot_exchange: list[dict[str, Any]] = []  # the bot and the customer
        authors: dict[int, dict[str, Any]] = {}  # side-loaded with the comments
        for comment in self.client.items(f"tickets/{ticket['id']}/comments.json", "comments", users=authors):
            role, speaker_name = self._speaker(_user_id(comment.get("author_id")), _user_id(ticket.get("requester_id")), speakers, authors)
            message = {"from": role, "body": comment.get("body"), "at": comment.get("created_at")}
            if speaker_name:  # an agent's or a bot's: which bot answered matters as much as which person
                message["agent_name"] = speaker_name
            if role != "bot":
                conversation.append(message)
            if role != "agent":
                bot_exchange.append(message)
        fields = {"ticket_id": ticket["id"], "subject": ticket.get("subject"), "created_at": ticket.get("created_at")}
        made = {"system": f"{self.name}.tickets", "source": PROVIDED, "collected_at": _time(ticket.get("created_at"))}
        if conversation:
            yield Record(category=SUPPORT, fields={**fields, "messages": conversation}, **made)
        if any(message["from"] == "bot" for message in bot_exchange):
            yield Record(category=BOT_USAGE, fields={**fields, "messages": bot_exchange}, **made)
        if FEEDBACK_TAG in _optional(ticket.get("tags"), list, "ticket tags"):
            ticket_fields = [_optional(f, dict, "ticket field") for f in _optional(ticket.get("custom_fields"), list, "ticket fields")]
            rating = next((f.get("value") for f in ticket_fields if str(f.get("id")) == RATING_FIELD), None)
            text = _optional(ticket.get("satisfaction_rating"), dict, "satisfaction rating").get("comment")
            yield Record(category=FEEDBACK, fields={"rating": rating, "text": text, "at": ticket.get("created_at")}, **made)

    def _speaker(self, author_id: Any, requester_id: Any, speakers: dict[int, tuple[str, str | None]],
                 authors: dict[int, dict[str, Any]]) -> tuple[str, str | None]:
        """Who wrote a comment: ("customer", None), ("agent", name) or ("bot", name). An author the
        helpdesk did not side-load is looked up; each is worked out once per gather."""
        if author_id == requester_id:
            return "customer", None
        if author_id not in speakers:
            if author_id in authors:
                user = authors[author_id]
            else:
                answer = self.client.call("GET", f"users/{author_id}.json", missing_ok=True)
                user = _optional(answer, dict, "user answer").get("user")
            if user is None:
                # A vanished author of a comment on the subject's own ticket was, in practice, staff.
                speakers[author_id] = ("agent", None)
            elif not isinstance(user, dict):
                raise PermanentError(f"support: the helpdesk's user {author_id} is not an object")
            elif _optional(user.get("user_fields"), dict, "user fields").get("bot"):
                speakers[author_id] = ("bot", user.get("name"))
            elif user.get("role") in ("agent", "admin"):
                speakers[author_id] = ("agent", user.get("name"))
            else:
                speakers[author_id] = ("customer", None)
        return speakers[author_id]


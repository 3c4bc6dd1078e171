"""Load one subject's support chats and feedback into the demo helpdesk (contract §7, `support`).

Everything is written through the helpdesk's API, as a company migrating its history into Zendesk
would: users are created, and tickets arrive through the Ticket Import API with their comments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from connectors.base import Identity
from connectors.http import HttpConnector
from connectors.systems import System

BOT_NAME = "Help Bot"
FEEDBACK_TAG = "feedback"  # the tag the support system's file reads feedback from
RATING_FIELD = "rating"  # the id of the ticket field holding a feedback rating
DEFAULT_AGENT = "Support Agent"
# Agents need an address to be found again by the only search the API offers; `.invalid` is
# reserved (RFC 2606), so no subject can ever share one.
AGENT_DOMAIN = "agents.helpdesk.invalid"


def support_load(*, connector: HttpConnector, subject_email: str, chats: list[dict], feedback: list[dict],
                 agents: dict[tuple[str, bool], int] | None = None) -> None:
    """Write one subject's chats and feedback as helpdesk tickets, replacing any the subject had
    (with neither, the subject is made absent from the helpdesk).

    `chats` are `{"topic", "at", "messages": [{"from": "customer|agent|bot|other", "agent_name", "name",
    "email", "body"}]}`, `feedback` are `{"rating", "text", "at"}`, already validated; `at` is an ISO
    8601 string or a datetime. Agents are found by name or created; the bot is the agent "Help Bot";
    another person (`other`, on a ticket shared with the subject) is the end user with their address.

    `connector` is the support system's (its file says how to reach and erase the helpdesk); it
    also carries the writes. A loader of many subjects passes one `agents` map (name, bot -> id) for
    all of them, so each agent is looked up once per load.
    """
    agents = {} if agents is None else agents
    # Erasing first makes a load repeatable: afterwards the subject holds exactly this data.
    connector.erase(Identity(email=subject_email.strip().lower()))
    if not chats and not feedback:
        return  # someone who never contacted support is no helpdesk user
    subject = {"name": subject_email.strip().split("@")[0], "email": subject_email.strip(), "role": "end-user"}
    subject_id = connector.call("POST", "/api/v2/users.json", json={"user": subject})["user"]["id"]
    for chat in chats:
        at = _iso(chat["at"])
        comments = [
            {"author_id": _author_id(connector, message, subject_id, agents), "value": message["body"], "created_at": at}
            for message in chat["messages"]
        ]
        ticket = {
            "requester_id": subject_id, "subject": chat["topic"], "created_at": at, "status": "closed", "tags": ["chat"],
            "comments": comments,
        }
        connector.call("POST", "/api/v2/imports/tickets.json", json={"ticket": ticket})
    for item in feedback:
        # The words live in the satisfaction rating only, so they are not also a support message.
        ticket = {
            "requester_id": subject_id, "subject": "Feedback", "created_at": _iso(item["at"]), "status": "closed",
            "tags": [FEEDBACK_TAG], "comments": [],
            "satisfaction_rating": {"score": "good" if item["rating"] >= 4 else "bad", "comment": item.get("text")},
            "custom_fields": [{"id": RATING_FIELD, "value": item["rating"]}],
        }
        connector.call("POST", "/api/v2/imports/tickets.json", json={"ticket": ticket})


def support_load_many(*, system: System, subjects: list[tuple[str, list[dict], list[dict]]], threads: int = 4) -> None:
    """`support_load` for many (subject email, chats, feedback) into the support `system`, `threads` at a time.

    Loading is a series of round trips to the helpdesk, about half of generating an estate when
    made one after another. Every agent and other person the chats name is found or created first,
    one by one, so the threads never create the same helpdesk user twice.
    """
    agents: dict[tuple[str, bool], int] = {}
    first = system.connector()
    connectors, local, lock = [first], threading.local(), threading.Lock()
    try:
        for _subject, chats, _feedback in subjects:
            for chat in chats:
                for message in chat["messages"]:
                    if message["from"] == "other":
                        _person_ensure(first, name=message["name"], email=message["email"])
                    elif message["from"] != "customer":
                        _agent_id(first, message, agents)

        def load(item: tuple[str, list[dict], list[dict]]) -> None:
            if not hasattr(local, "connector"):
                local.connector = system.connector()
                with lock:
                    connectors.append(local.connector)
            subject_email, chats, feedback = item
            support_load(connector=local.connector, subject_email=subject_email, chats=chats, feedback=feedback, agents=agents)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(load, subjects))
    finally:
        for connector in connectors:
            connector.close()


def _author_id(connector: HttpConnector, message: dict[str, Any], subject_id: int, agents: dict[tuple[str, bool], int]) -> int:
    if message["from"] == "customer":
        return subject_id
    if message["from"] == "other":
        return _person_ensure(connector, name=message["name"], email=message["email"])
    return _agent_id(connector, message, agents)


def _agent_id(connector: HttpConnector, message: dict[str, Any], agents: dict[tuple[str, bool], int]) -> int:
    """The agent (or the bot) who wrote a message that is not the customer's, found once per `agents` map."""
    bot = message["from"] == "bot"
    name = BOT_NAME if bot else (message.get("agent_name") or DEFAULT_AGENT)
    if (name, bot) not in agents:
        agents[name, bot] = _agent_ensure(connector, name=name, bot=bot)
    return agents[name, bot]


def _agent_ensure(connector: HttpConnector, *, name: str, bot: bool) -> int:
    """The id of the agent with this name, created if there is none: agents are shared by subjects."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "agent"
    # The digest keeps names that slug alike ("Ana B", "ana-b") apart.
    address = f"{'bot-' if bot else ''}{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}@{AGENT_DOMAIN}"
    user: dict[str, Any] = {"name": name, "email": address, "role": "agent"}
    if bot:
        user["user_fields"] = {"bot": True}
    return _user_ensure(connector, user)


def _person_ensure(connector: HttpConnector, *, name: str, email: str) -> int:
    """The id of the end user with this address (another customer on a shared ticket), created if there is none."""
    return _user_ensure(connector, {"name": name, "email": email, "role": "end-user"})


def _user_ensure(connector: HttpConnector, user: dict[str, Any]) -> int:
    """The id of the helpdesk user with `user`'s address, created as `user` if there is none."""
    address = user["email"]
    found = connector.call("GET", "/api/v2/users/search.json", params={"query": f"email:{address}"})["users"]
    found = [candidate for candidate in found if str(candidate.get("email") or "").lower() == address]  # a search, not a lookup
    if found:
        return found[0]["id"]
    return connector.call("POST", "/api/v2/users.json", json={"user": user})["user"]["id"]


def _iso(at: str | dt.datetime) -> str:
    return at.isoformat() if isinstance(at, dt.datetime) else at

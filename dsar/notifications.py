"""Emails to the data subject, each rendered from a plain-text and an HTML template."""

from __future__ import annotations

import io
import logging
import re
import secrets
from email.generator import NLCRE, BytesGenerator
from email.policy import Compat32
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import SafeMIMEMultipart
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject

from .models import Request

logger = logging.getLogger(__name__)

SUBJECTS = {
    "code": "Your verification code",
    "received": "We have received your request",
    "completed": "Your request is complete",
    "denied": "About your request",
    "extended": "We need more time for your request",
    "referred": "Your request is handled by your organisation",
    "failed": "Your request is delayed",
    "expiring": "Your download expires soon",
    "staff_deadline": "Request deadline",
    "staff_erasure_alert": "Data found after an erasure",
}


# A header value as a mail server reads it unchanged: printable ASCII, spaces and tabs, no line break.
_PLAIN_HEADER = re.compile(r"[\t\x20-\x7e]*")


class _HeaderPolicy(Compat32):
    """Python's compat32 policy, which Django's messages use, writing a short plain header as it is.

    compat32 runs every header through `email.header.Header` to fold and encode it: 40 % of the
    instructions that building the code email costs, for headers that fit on one line and need no
    encoding, where that machinery returns the value unchanged. Anything else still goes through it.
    """

    def _plain(self, name: str, value) -> bool:
        return isinstance(value, str) and len(name) + 2 + len(value) <= self.max_line_length and bool(_PLAIN_HEADER.fullmatch(value))

    def fold(self, name, value):
        return f"{name}: {value}{self.linesep}" if self._plain(name, value) else super().fold(name, value)

    def fold_binary(self, name, value):
        return f"{name}: {value}{self.linesep}".encode("ascii") if self._plain(name, value) else super().fold_binary(name, value)


HEADER_POLICY = _HeaderPolicy()


class _BytesGenerator(BytesGenerator):
    """Python's BytesGenerator, writing each text of a message in one piece. The stock one writes
    every line and every line ending apart, two encoded writes a line: half of what serializing the
    code email costs. The bytes are the same, since the text's line endings become the generator's
    as its own `NLCRE.split` and joining make them."""

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(self._NL.join(NLCRE.split(lines)))


class _Multipart(SafeMIMEMultipart):
    """Django's multipart message, written by `_BytesGenerator` (which writes its parts too)."""

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        out = io.BytesIO()
        _BytesGenerator(out, mangle_from_=False).flatten(self, unixfrom=unixfrom, linesep=linesep)
        return out.getvalue()


class _Email(EmailMultiAlternatives):
    """A text email with its HTML alternative, cheap to build on the filing path.

    - Its MIME boundary is random from the start. Left to itself, Python's generator picks a
      boundary and then compiles a regular expression to prove it absent from the body: 6 % of the
      instructions that filing a request costs. 128 random bits cannot collide with a body in
      practice, which is how most mail software chooses them.
    - Its headers are written by `HEADER_POLICY`, which the generator applies to every part.
    - It is written by `_BytesGenerator`.
    """

    def message(self):
        message = super().message()
        if message.is_multipart():
            message.set_boundary(f"=_{secrets.token_hex(16)}")
        if type(message) is SafeMIMEMultipart:
            message.__class__ = _Multipart
        message.policy = HEADER_POLICY
        return message


STATUS_SALT = "dsar.status"
STATUS_LINK_DAYS = 120


def status_url(request: Request) -> str:
    """The request's page, with a signed key that opens it for whoever holds the email."""
    key = signing.dumps(str(request.id), salt=STATUS_SALT)
    return f"{settings.DSAR_PUBLIC_URL}/requests/{request.id}?key={key}"


def status_key_valid(request_id, key: str) -> bool:
    """Whether `key` is a genuine, unexpired status-link key for this request."""
    try:
        return signing.loads(key, salt=STATUS_SALT, max_age=STATUS_LINK_DAYS * 86400) == str(request_id)
    except signing.BadSignature:
        return False


def email_send(request: Request, template: str, **context: Any) -> None:
    """Send one email now. Logs carry the request id, never the address."""
    # Signed only if the template shows it: the code email, sent on every filing, does not.
    context = {"request": request, "status_url": SimpleLazyObject(lambda: status_url(request)), **context}
    message = _Email(
        subject=SUBJECTS[template],
        body=render_to_string(f"emails/{template}.txt", context),
        to=[request.email],
    )
    message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
    message.send()
    logger.info("request %s: sent %s email", request.id, template)


def email_on_commit(request: Request, template: str, **context: Any) -> None:
    """Send once the surrounding transaction commits; a mail failure never undoes the change."""

    def send() -> None:
        try:
            email_send(request, template, **context)
        except Exception:
            logger.exception("request %s: could not send %s email", request.id, template)

    transaction.on_commit(send)


def code_email_on_commit(request: Request, code: str) -> None:
    """The verification code, once the transaction commits. Its minutes go to the templates as text:
    a number in a Django template is localized on every render, a tenth of this email's cost on the
    filing path, and the emails are written in English with plain numbers."""
    email_on_commit(request, "code", code=code, ttl_minutes=str(settings.DSAR_CODE_TTL_MINUTES))


def staff_email_on_commit(recipients: list[str], template: str, **context: Any) -> None:
    """Tell staff something once the transaction commits (reminders, escalations, alerts)."""
    if not recipients:
        logger.warning("no staff address to send %s to", template)
        return
    context = {"console_url": settings.DSAR_PUBLIC_URL + "/console/", **context}

    def send() -> None:
        try:
            message = _Email(
                subject=SUBJECTS[template], body=render_to_string(f"emails/{template}.txt", context), to=recipients
            )
            message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
            message.send()
        except Exception:
            logger.exception("could not send %s to staff", template)

    transaction.on_commit(send)

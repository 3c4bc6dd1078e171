"""The web server's access log, without the secrets some of the product's addresses carry.

A download link holds its signature in the path (/api/v1/requests/<id>/download/<signature>) and
the emailed status link its key in the query (/requests/<id>?key=<key>): whoever reads either opens
the person's data, the status link for 120 days. gunicorn writes the request line, the path, the
query and the Referer as they came; `RedactingLogger` (gunicorn's documented `--logger-class`
extension point) writes them with those secrets replaced.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

REDACTED = "[redacted]"

# The query parameters whose values are kept: the staff queue's and API's filters and paging, and
# the schema's format and language. Every other value is replaced, so a parameter added later stays
# hidden until it is listed here: the status link's key, the console's search (often an email) and
# the login page's `next` among them.
KEPT_PARAMETERS = frozenset({"status", "type", "overdue", "sort", "page", "page_size", "format", "lang"})

# The download link's signature is the path segment after `download/`. Django's paths are case
# sensitive, but a case-changed copy of a link is still worth hiding.
DOWNLOAD_SIGNATURE = re.compile(r"(/requests/[^/?#]*/download/)[^/?#]+", re.IGNORECASE)

# Atoms holding a whole address (a path, or a URL such as the Referer), a bare query string, or a
# credential (the staff API's token header, the session cookie): the letters of the default format
# and their spellings as request headers and environ variables, which a custom format may use.
URI_ATOMS = ("U", "f", "{referer}i", "{raw_uri}e", "{path_info}e", "{http_referer}e")
QUERY_ATOMS = ("q", "{query_string}e")
CREDENTIAL_ATOMS = ("{authorization}i", "{cookie}i", "{set-cookie}o", "{http_authorization}e", "{http_cookie}e")


def query_redact(query: str) -> str:
    """`query` (a query string, without its `?`) with every value replaced but those of KEPT_PARAMETERS."""
    parts = []
    for part in query.split("&"):
        name, equals, _value = part.partition("=")
        if unquote_plus(name) in KEPT_PARAMETERS:
            parts.append(part)
        elif equals:
            parts.append(f"{name}={REDACTED}")
        else:
            # A bare word is a value too (`?SECRET`); an empty part (`a=1&&b=2`) stays empty.
            parts.append(REDACTED if part else part)
    return "&".join(parts)


def uri_redact(uri: str) -> str:
    """`uri` (a path with its query, or a whole URL) with the download signature and the query's
    values redacted; so is a fragment, which clients do not send but a Referer could carry."""
    uri, hash_mark, _fragment = uri.partition("#")
    path, question_mark, query = uri.partition("?")
    redacted = DOWNLOAD_SIGNATURE.sub(rf"\g<1>{REDACTED}", path)
    if question_mark:
        redacted += "?" + query_redact(query)
    if hash_mark:
        redacted += "#" + REDACTED
    return redacted


class RedactingLogger(Logger):
    """gunicorn's logger, with the access log's addresses redacted (see the module's docstring)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # The request line is "METHOD URI PROTOCOL"; the URI cannot hold a space (gunicorn refuses it).
        if isinstance(atoms.get("r"), str):
            atoms["r"] = " ".join(uri_redact(word) for word in atoms["r"].split(" "))
        for name in URI_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = uri_redact(atoms[name])
        for name in QUERY_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = query_redact(atoms[name])
        for name in CREDENTIAL_ATOMS:
            if name in atoms:
                atoms[name] = REDACTED
        return atoms


class RedactingFilter(logging.Filter):
    """The product's own log records (Django's "Not Found: <path>" among them) with the addresses
    in their arguments redacted as the access log's are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(uri_redact(arg) if isinstance(arg, str) and arg.startswith("/") else arg for arg in record.args)
        return True

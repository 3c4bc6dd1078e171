"""Staff passwords refuse the words of their context (ASVS 6.1.2, 6.2.11): the product's and the
organisation's names, which are the first an attacker guessing a password for this console tries.

The words are those listed in AUTH_PASSWORD_VALIDATORS ("dsar", "privacy", "console") and the
organisation's names as this deployment states them: the labels of the host people reach the
product at (DSAR_PUBLIC_URL) and of the sender's mail domain (DSAR_FROM_EMAIL), less the top-level
domain. `https://privacy.acme.example` with `privacy@acme-corp.example` gives "privacy", "acme" and
"corp". A label of fewer than four letters ("eu", "co") is not a word worth refusing.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

# Parts of a host name that say nothing about the organisation.
_GENERIC_LABELS = {"www", "mail", "smtp", "localhost"}
_MIN_WORD = 4


def _host_words(host: str | None) -> list[str]:
    labels = (host or "").lower().split(".")[:-1]  # the top-level domain names no one
    words = [word for label in labels for word in re.split(r"[^a-z0-9]+", label)]
    return [word for word in words if len(word) >= _MIN_WORD and not word.isdigit() and word not in _GENERIC_LABELS]


def context_words(listed: list[str]) -> list[str]:
    """The listed words, then the organisation's names from the deployment's addresses; each once, lower case."""
    sender_domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2]
    named = [*_host_words(urlsplit(settings.DSAR_PUBLIC_URL).hostname), *_host_words(sender_domain)]
    return list(dict.fromkeys(word.lower() for word in [*listed, *named]))


class ContextWordsValidator:
    """Refuse a password that contains, in any case, a word of the product's or organisation's names."""

    def __init__(self, words: list[str] = ()):
        self.words = list(words)

    def validate(self, password: str, user=None) -> None:
        folded = password.casefold()
        found = [word for word in context_words(self.words) if word in folded]
        if found:
            raise ValidationError(
                "This password contains %(words)s: the names of this product and organisation are the first words "
                "anyone guessing a password here tries.",
                code="password_context_word",
                params={"words": ", ".join(f"“{word}”" for word in found)},
            )

    def get_help_text(self) -> str:
        return "Your password can’t contain the names of this product or organisation (such as “privacy” or “console”)."

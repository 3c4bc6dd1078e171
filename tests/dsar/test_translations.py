"""Every word a person reads is marked for translation: the portal's pages, the error pages, the
emails and the export's report (Django templates and the report's Jinja2 ones).

A template's text is read as a browser would: the template's own tags and the blocks that are
translated are taken out, then what is left is parsed as HTML. Any word left in the page's text, or
in an attribute people read (alt, title, aria-label, placeholder), was written without
`{% translate %}`; so is a quoted phrase inside a tag or expression (`|default:"your organisation"`)
that is not the argument of a translation call.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template.base import Lexer, TokenType
from jinja2 import Environment

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
# What people read: the portal, the pages of errors, their emails and their export's report.
PEOPLE_DJANGO = sorted([*TEMPLATES.glob("portal/*.html"), *TEMPLATES.glob("emails/*.*"), *TEMPLATES.glob("exports/*.html"),
                        *TEMPLATES.glob("*.html")])
PEOPLE_JINJA = sorted(TEMPLATES.glob("jinja2/exports/*.html"))

WORD = re.compile(r"[^\W\d_]{2,}")
READ_ATTRIBUTES = {"alt", "title", "aria-label", "placeholder"}
# A quoted string with a space between letters: a phrase, not an id, a path or a format.
PHRASE = re.compile(r"""(["'])([^"']*[^\W\d_][^"']*\s[^"']*[^\W\d_][^"']*)\1""")
HOLE = "\x00"  # what stands in for a template tag, so the HTML around it still parses


class _Reader(HTMLParser):
    """The text a person reads in a page: data outside <style> and <script>, and read attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.read: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("style", "script")
        self.read.extend(value for name, value in attrs if name in READ_ATTRIBUTES and value)

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "script") and self._hidden > 0

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.read.append(data)


def unmarked_words(text: str) -> list[str]:
    """The pieces of `text` (a template with its tags taken out) that hold words."""
    reader = _Reader()
    reader.feed(text)
    reader.close()
    return [piece.strip(HOLE + " \n").replace(HOLE, "…") for piece in reader.read if WORD.search(piece.replace(HOLE, " "))]


def django_text(source: str) -> tuple[str, list[str]]:
    """The template with every tag and every translated block taken out; and the phrases quoted
    inside its tags that are not what a translation tag translates."""
    text, phrases, translating, commented = [], [], False, False
    for token in Lexer(source).tokenize():
        contents = token.contents
        if token.token_type == TokenType.BLOCK:
            name = contents.split()[0] if contents else ""
            commented = (commented or name == "comment") and name != "endcomment"
            if name in ("blocktranslate", "blocktrans"):
                translating = True
            elif name in ("endblocktranslate", "endblocktrans"):
                translating = False
            elif name not in ("translate", "trans") and not translating:
                phrases += [match[2] for match in PHRASE.finditer(contents)]
        elif token.token_type == TokenType.VAR and not translating:
            phrases += [match[2] for match in PHRASE.finditer(re.sub(r"_\((\"[^\"]*\"|'[^']*')\)", "", contents))]
        elif token.token_type == TokenType.TEXT and not translating and not commented:
            text.append(contents)
            continue
        text.append(HOLE)
    return "".join(text), phrases


def jinja_text(source: str) -> tuple[str, list[str]]:
    """As django_text, for a Jinja2 template: `{% trans %}` blocks and the string arguments of
    `_()`, `gettext()` and `ngettext()` are translated; any other quoted phrase is not."""
    text, phrases = [], []
    translating, depth, call_depth, previous = False, 0, None, None
    for _line, kind, value in Environment(extensions=["jinja2.ext.i18n"]).lex(source):
        if kind == "data":
            text.append(HOLE if translating else value)
            continue
        if kind == "whitespace":
            continue
        if kind == "name" and value in ("trans", "pluralize") and previous == "block_begin":
            translating = True
        elif kind == "name" and value == "endtrans" and previous == "block_begin":
            translating = False
        elif (kind, value) == ("operator", "("):
            depth += 1
            if call_depth is None and previous in ("_", "gettext", "ngettext", "pgettext", "npgettext"):
                call_depth = depth
        elif (kind, value) == ("operator", ")"):
            if call_depth == depth:
                call_depth = None
            depth -= 1
        elif kind == "string" and call_depth is None and not translating and PHRASE.fullmatch(value):
            phrases.append(value[1:-1])
        if kind in ("block_begin", "variable_begin"):
            text.append(HOLE)
        previous = value if kind == "name" else kind
    return "".join(text), phrases


def test_the_checker_finds_words_outside_translation_and_none_inside():
    text, phrases = django_text('{% load i18n %}<p title="Hello there">{% translate "Fine" %} Not marked</p>{% comment %}A note{% endcomment %}'
                                '{% blocktranslate %}Marked {{ x }}{% endblocktranslate %}{{ y|default:"your organisation" }}')
    assert unmarked_words(text) == ["Hello there", "Not marked"]
    assert phrases == ["your organisation"]
    text, phrases = jinja_text('<p>{{ _("Fine %(n)s", n=words["x"]) }} Loose</p>{% trans %}Marked{% endtrans %}'
                               '{% set w = {"a": ("See your data", _("Fine too"))} %}<img alt="{{ _("A picture") }}">')
    assert unmarked_words(text) == ["Loose"]
    assert phrases == ["See your data"]


@pytest.mark.parametrize("path", PEOPLE_DJANGO, ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_every_word_of_a_django_template_is_marked_for_translation(path):
    text, phrases = django_text(path.read_text())
    assert unmarked_words(text) + phrases == []


@pytest.mark.parametrize("path", PEOPLE_JINJA, ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_every_word_of_the_reports_templates_is_marked_for_translation(path):
    text, phrases = jinja_text(path.read_text())
    assert unmarked_words(text) + phrases == []


# --- The catalogues ------------------------------------------------------------------------------------

LOCALE = ROOT / "dsar" / "locale"
LANGUAGES = sorted(path.name for path in LOCALE.iterdir() if path.is_dir())


def _without_creation_date(po: Path) -> str:
    return "".join(line for line in po.read_text().splitlines(keepends=True) if not line.startswith('"POT-Creation-Date:'))


def test_every_language_the_portal_offers_has_a_catalogue(settings):
    assert LANGUAGES == ["de"]
    assert [code for code, _name in settings.LANGUAGES] == ["en", "de"]  # English is the code's own


def test_the_catalogues_hold_every_marked_string_and_are_compiled(tmp_path):
    """`make messages` on the tree as it is changes nothing: no marked string is missing from a
    catalogue, none is left there that the code no longer has, and the compiled files are current."""
    for language in LANGUAGES:
        shutil.copytree(LOCALE / language, tmp_path / language)
    environment = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "-m", "dsar.management.commands.makemessages", str(tmp_path)], cwd=ROOT, env=environment, check=True)
    for language in LANGUAGES:
        fresh, committed = tmp_path / language / "LC_MESSAGES", LOCALE / language / "LC_MESSAGES"
        assert _without_creation_date(fresh / "django.po") == _without_creation_date(committed / "django.po"), language
        assert (fresh / "django.mo").read_bytes() == (committed / "django.mo").read_bytes(), language


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_of_a_catalogue_is_translated(language):
    """msgattrib lists the entries left empty or marked fuzzy (a guess gettext does not use): none."""
    for which in ("--untranslated", "--only-fuzzy"):
        listed = subprocess.run(["msgattrib", which, str(LOCALE / language / "LC_MESSAGES" / "django.po")],
                                capture_output=True, text=True, check=True)
        assert listed.stdout == "", which

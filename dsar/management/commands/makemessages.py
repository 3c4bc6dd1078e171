"""Django's makemessages, reading two more kinds of file: the export report's Jinja2 templates
(templates/jinja2/) and the taxonomy's wording (dsar/taxonomy.yaml).

Django reads its own templates by turning each into Python that xgettext understands. It cannot read
Jinja2's syntax, and it never opens YAML. So each of these is turned into Python here too: one
`gettext(...)` or `ngettext(...)` call per message, on the message's own line, found by Jinja2's own
extractor for the templates and by the taxonomy's wording keys for the YAML. Everything else is
Django's: `make messages` runs it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from django.core.management.commands import compilemessages, makemessages
from jinja2.ext import babel_extract

from connectors.taxonomy import WORDING

JINJA_TEMPLATES = Path("templates") / "jinja2"
TAXONOMY = Path("dsar") / "taxonomy.yaml"
KEYWORDS = ("_", "gettext", "ngettext")


def jinja_messages(source: bytes) -> Iterator[tuple[int, tuple[str, ...], list[str]]]:
    """(line, (singular[, plural]), translators' comments) of each message in a Jinja2 template."""
    options = {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}
    for line, _function, message, comments in babel_extract(io.BytesIO(source), KEYWORDS, ["Translators:"], options):
        strings = tuple(part for part in (message if isinstance(message, tuple) else (message,)) if isinstance(part, str))
        yield line, strings, comments


def taxonomy_messages(source: str) -> Iterator[tuple[int, tuple[str, ...], list[str]]]:
    """(1, (sentence,), []) of each sentence of the taxonomy's wording."""
    def walk(node: Any, key: str | None = None) -> Iterator[str]:
        if isinstance(node, dict):
            for child_key, child in node.items():
                yield from walk(child, child_key)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, key)
        elif isinstance(node, str) and key in WORDING:
            yield node

    for sentence in walk(yaml.safe_load(source)):
        yield 1, (sentence,), []


def as_python(messages: Iterator[tuple[int, tuple[str, ...], list[str]]]) -> str:
    """Python source calling gettext or ngettext for each message, on its line where it has one."""
    lines: list[str] = []
    for line, strings, comments in messages:
        calls = [*(f"# Translators: {comment}" for comment in comments),
                 f"gettext({strings[0]!r})" if len(strings) == 1 else f"ngettext({strings[0]!r}, {strings[1]!r}, 1)"]
        while len(lines) + len(calls) < line:
            lines.append("")
        lines.extend(calls)
    return "\n".join(lines) + "\n"


class BuildFile(makemessages.BuildFile):
    def preprocess(self) -> None:
        path = Path(self.path).resolve().relative_to(Path.cwd())
        if path.is_relative_to(JINJA_TEMPLATES):
            content = as_python(jinja_messages(path.read_bytes()))
        elif path.suffix == ".yaml":
            content = as_python(taxonomy_messages(path.read_text())) if path == TAXONOMY else ""
        else:
            return super().preprocess()
        Path(self.work_path).write_text(content, encoding="utf-8")


class Command(makemessages.Command):
    help = makemessages.Command.help + " Also reads the export report's Jinja2 templates and the taxonomy's wording."
    build_file_class = BuildFile

    def handle(self, *args: Any, **options: Any) -> None:
        options["extensions"] = options.get("extensions") or ["html", "txt", "py", "yaml"]
        super().handle(*args, **options)


# Not read for messages: the console is for staff, in English (dsar/middleware.py); the rest is not the product.
# The catalogue's own folder too: found while walking, it would take the messages of dsar/ apart
# from the others' when `locale_dir` is another (as the catalogue's test makes it).
IGNORED = [".venv/*", "var/*", "mutants/*", "tests/*", "benchmarks/*", "estate/*", "docs/*", "templates/console/*", "dsar/console/*",
           "dsar/templatetags/console_times.py", "dsar/locale"]


def main(locale_dir: str = "dsar/locale", *new: str) -> None:
    """`make messages [LANGUAGE=fr]`: each catalogue in `locale_dir` (and one for each language in
    `new`) brought up to date with the marked strings (new ones empty, gone ones dropped), then
    compiled. Needs no configuration, database or services; run from the checkout's root."""
    from django.conf import settings
    from django.core.management import call_command

    languages = sorted({*(path.name for path in Path(locale_dir).iterdir() if path.is_dir()), *new})
    settings.configure(USE_I18N=True, LOCALE_PATHS=[locale_dir])
    call_command(Command(), locale=languages, no_obsolete=True, add_location="file", ignore_patterns=IGNORED, verbosity=0)
    call_command(compilemessages.Command(), locale=languages, ignore_patterns=IGNORED, verbosity=0)


if __name__ == "__main__":
    import sys

    main(*sys.argv[1:])

"""The Jinja2 environment of the export report (templates/jinja2/exports/index.html).

It has what the report used under Django's template language: Django's own `date` and
`pluralize` filters (the anchors' slugs come with the categories, each worked out once), and
the report's helpers from `templatetags/export_report.py`, so the page is what Django's engine
made of it, byte for byte but for a quote in a value, which Jinja2 escapes as &#39; or &#34;
(Django: &#x27; or &quot;). Autoescaping is on (Django's default for
Jinja2), and Django's safe strings (the taxonomy's words, rendered once) are not escaped again.
"""

from __future__ import annotations

from django.template.defaultfilters import date, pluralize
from jinja2 import Environment

from .templatetags.export_report import record_block, source_words


def environment(**options) -> Environment:
    env = Environment(**options)
    env.filters.update(date=date, pluralize=pluralize, source_words=source_words)
    env.globals.update(record_block=record_block)
    return env

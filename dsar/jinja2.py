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
from django.utils.translation import gettext, ngettext
from jinja2 import Environment

from .templatetags.export_report import file_href, in_zone, record_block, source_words


def environment(**options) -> Environment:
    # Jinja2's i18n extension, on Django's catalogues: `{% trans %}` in the report is translated as
    # `{% translate %}` is in Django's templates.
    env = Environment(**{**options, "extensions": [*options.get("extensions", ()), "jinja2.ext.i18n"]})
    env.install_gettext_callables(gettext, ngettext, newstyle=True)
    env.filters.update(date=date, pluralize=pluralize, source_words=source_words, in_zone=in_zone, file_href=file_href)
    env.globals.update(record_block=record_block)
    return env

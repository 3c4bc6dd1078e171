"""The country of each recipient of the person's data (GDPR Art. 15(2)) in the report's language:
"Vereinigte Staaten" in a German report, "United States" in an English one, whatever language the
worker or the browser that made the report's categories was in."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.utils import translation

from connectors.base import PROVIDED
from dsar.exports.report import report_category, report_render

from ...factories import request_make

GENERATED = dt.datetime(2026, 5, 6, 7, 8, tzinfo=dt.UTC)


def _report(language: str, *, made_in: str) -> str:
    """The report, as a reader sees it, of the name and contact details the demo's accounts system
    holds (its host Nimbus Hosting GmbH in Germany and its mail service Postwave Inc. in the United
    States receive them), the category made with `made_in` active and rendered in `language`."""
    request = request_make(status="processing", email="laender@example.com")
    request.language, request.time_zone = language, "Europe/Berlin"
    line = json.dumps({"connector": "accounts", "system": "accounts.users", "source": PROVIDED.as_dict(),
                       "collected_at": "2026-01-02T03:04:05+00:00", "fields": {"name": "Lena Land"}})
    with translation.override(made_in):
        contact = report_category("name_contact", records=1, sources=[PROVIDED], lines=[line], connectors=["accounts"])
    page = report_render(request=request, categories=[contact], generated_at=GENERATED).decode()
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


@pytest.mark.django_db
@pytest.mark.parametrize("made_in", ["en", "de"])
def test_a_german_report_names_the_recipients_countries_in_german(made_in):
    said = _report("de", made_in=made_in)

    assert "Nimbus Hosting GmbH , Deutschland ( DE )." in said
    assert "Postwave Inc. , Vereinigte Staaten ( US )." in said
    assert "Germany" not in said and "United States" not in said


@pytest.mark.django_db
@pytest.mark.parametrize("made_in", ["en", "de"])
def test_an_english_report_names_them_in_english(made_in):
    said = _report("en", made_in=made_in)

    assert "Nimbus Hosting GmbH , Germany ( DE )." in said
    assert "Postwave Inc. , United States ( US )." in said
    assert "Deutschland" not in said and "Vereinigte Staaten" not in said

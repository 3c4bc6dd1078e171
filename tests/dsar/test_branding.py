"""The company as people see it (DSAR_BRAND): its name on the pages, the console and every email's
subject, its colour in the pages' style, its logo served by the product, its contact address and
privacy statement in the footer."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from dsar.config import config_load

from .test_config import environment  # noqa: F401  (the fixture)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")


@pytest.fixture
def northwind(settings, tmp_path):
    logo = tmp_path / "northwind.png"
    logo.write_bytes(PNG)
    settings.DSAR_BRAND = {"name": "Northwind Traders", "colour": "#7c2d12", "logo": logo, "contact_email": "privacy@northwind.example",
                           "privacy_statement_url": "https://northwind.example/privacy"}
    return settings.DSAR_BRAND


def test_the_portal_shows_the_companys_name_logo_contact_and_privacy_statement(client, db, northwind):
    page = client.get(reverse("portal:start")).content.decode()
    assert "<title>Ask what data we hold, or ask us to delete it – Northwind Traders privacy requests</title>" in page
    assert '<img class="site-logo" src="/brand/logo" alt="" height="32"> Northwind Traders' in page
    assert '<a href="mailto:privacy@northwind.example">privacy@northwind.example</a>' in page
    assert '<a href="https://northwind.example/privacy">Northwind Traders\'s privacy statement</a>' in page
    assert '<link rel="stylesheet" href="/brand.css">' in page


def test_without_a_logo_or_statement_the_pages_show_neither_and_the_contact_is_the_sender(client, db):
    page = client.get(reverse("portal:start")).content.decode()
    assert "Example Company <span class=\"site-part\">privacy requests</span>" in page
    assert "<img" not in page and "privacy statement</a>" not in page
    assert '<a href="mailto:privacy@example.com">privacy@example.com</a>' in page  # DSAR_FROM_EMAIL's default
    assert client.get("/brand/logo").status_code == 404


def test_the_colour_reaches_the_style_sheet_with_a_darker_shade(client, db, northwind):
    response = client.get("/brand.css")
    assert response["Content-Type"] == "text/css; charset=utf-8"
    # 0x7c, 0x2d, 0x12 times 0.6, rounded: 0x4a, 0x1b, 0x0b.
    assert response.content.decode() == ":root { --brand: #7c2d12; --brand-dark: #4a1b0b; }\n"


def test_the_logo_is_served_from_its_file_with_its_type(client, db, northwind):
    response = client.get("/brand/logo")
    assert (response.status_code, response["Content-Type"], b"".join(response.streaming_content)) == (200, "image/png", PNG)
    assert client.post("/brand/logo").status_code == 405


def test_the_console_names_the_company(client, db, northwind):
    page = client.get(reverse("console:login")).content.decode()
    assert "Northwind Traders privacy requests <span>staff console</span>" in page


def test_every_email_subject_and_its_heading_name_the_company(client, db, northwind, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portal:request-new"), {"type": "access", "email": "branded@example.com", "scope": "all"})
    [sent] = [m for m in mailoutbox if m.to == ["branded@example.com"]]
    assert sent.subject == "Northwind Traders: Your verification code"
    html = sent.alternatives[0][0]
    assert "color:#7c2d12;\">Northwind Traders</td>" in html


def test_a_logo_that_is_not_an_image_file_is_refused(environment, tmp_path):  # noqa: F811
    script = tmp_path / "logo.js"
    script.write_text("alert(1)")
    environment(DSAR_BRAND=f'{{"logo": "{script}"}}')
    with pytest.raises(ImproperlyConfigured) as refused:
        config_load()
    assert str(refused.value).startswith("DSAR_BRAND['logo']: must be a .jpeg, .jpg, .png, .svg, .webp file")


def test_a_dark_enough_colour_is_kept_in_lower_case(environment):  # noqa: F811
    environment(DSAR_BRAND='{"name": "Northwind Traders", "colour": "#7C2D12"}')
    brand = config_load().brand
    assert (brand.name, brand.colour) == ("Northwind Traders", "#7c2d12")

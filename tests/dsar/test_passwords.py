"""Staff passwords refuse the product's and organisation's names and the member's own details
(ASVS 6.1.2, 6.2.11), through Django's public `validate_password`."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

NAMES_REFUSED = ("This password contains “privacy”, “console”: the names of this product and organisation are the first "
                 "words anyone guessing a password here tries.")


@pytest.fixture
def deployment(settings):
    settings.DSAR_PUBLIC_URL = "https://requests.acme-widgets.example"
    settings.DEFAULT_FROM_EMAIL = "Data protection <dpo@northwind.example>"


def _refusals(password: str, user=None) -> list[str]:
    try:
        validate_password(password, user)
    except ValidationError as error:
        return error.messages
    return []


def test_a_password_made_of_the_products_words_is_refused_naming_them(deployment):
    assert _refusals("privacy-console-2026") == [NAMES_REFUSED]
    assert _refusals("Harbour-DSAR-lantern-9") == [
        "This password contains “dsar”: the names of this product and organisation are the first words anyone guessing a "
        "password here tries."]


def test_the_organisations_names_from_its_addresses_are_refused_in_any_case(deployment):
    # From the public address's host and the sender's domain; the top-level domain is no word.
    assert _refusals("ACME-rocket-tundra-41") == [
        "This password contains “acme”: the names of this product and organisation are the first words anyone guessing a "
        "password here tries."]
    assert _refusals("tundra-Northwind-41") == [
        "This password contains “northwind”: the names of this product and organisation are the first words anyone "
        "guessing a password here tries."]
    assert _refusals("tundra-example-41") == []
    assert _refusals("harbour-lantern-tundra-41") == []


def test_a_password_like_the_members_username_or_email_is_refused(deployment):
    member = get_user_model()(username="margaretha.olsen", email="margaretha.olsen@northwind.example")
    assert _refusals("margaretha.olsen1", member) == ["The password is too similar to the username."]
    assert _refusals("harbour-lantern-tundra-41", member) == []

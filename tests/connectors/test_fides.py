"""connectors/fides.py: the table that maps fideslang data categories to the product's, and the
reference page generated from it."""

from __future__ import annotations

import pytest

from connectors.fides import CATEGORY_MAPPINGS, categories_reference, category_mapping
from connectors.taxonomy import category_known

from ..conftest import ROOT


@pytest.mark.parametrize(("fides", "expected"), [
    ("user.contact.email", ("user.contact.email", "name_contact", "column", True)),
    ("user.contact.address.postal_code", ("user.contact.address.postal_code", "name_contact", "column", True)),
    ("user.contact.email.work", ("user.contact.email", "name_contact", "column", False)),
    ("user.financial.credit_card", ("user.financial.credit_card", "payment", "last4", True)),
    ("user.financial.bank_account", ("user.financial.bank_account", "payment", "last4", True)),
    ("user.payment", ("user.payment", "payment", "column", True)),
    ("user.authorization.credentials", ("user.authorization.credentials", "credentials", "secret", True)),
    ("user.account.password", ("user.account.password", "credentials", "secret", True)),
    ("user.account.password.hash", ("user.account.password", "credentials", "secret", False)),
    ("user.account.username", ("user.account.username", "name_contact", "column", True)),
    ("user.device.ip_address", ("user.device.ip_address", "interactions.device_config", "column", True)),
    ("user.location.precise", ("user.location.precise", "location", "column", True)),
    ("user.demographic.profile", ("user.demographic.profile", "interests", "column", True)),
    ("user.behavior.search_history", ("user.behavior.search_history", "searches_commands", "column", True)),
    ("user.content.self_image", ("user.content.self_image", "images", "column", True)),
    ("user.sensor", ("user.sensor", "other_input", "column", True)),
    ("user.health.medications", ("user.health", "demographic.health", "column", False)),
    ("user.unique_id", ("user.unique_id", None, "not exported", True)),
    ("system.operations", ("system.operations", None, "not exported", True)),
    ("system.anything", ("system", None, "not exported", False)),
    ("user.loyalty_points", ("user", "interactions.device_usage", "column", False)),
    ("user.provided.identifiable.contact.email", ("user.provided.identifiable.contact", "name_contact", "column", False)),
    ("user.provided.identifiable.credentials.password", ("user.provided.identifiable.credentials", "credentials", "secret", False)),
])
def test_a_category_takes_its_own_row_or_else_its_nearest_listed_parents(fides, expected):
    mapping, own = category_mapping(fides)
    assert (mapping.fides, mapping.category, mapping.how, own) == expected


@pytest.mark.parametrize("fides", ["customer.email", "usr.contact", "users", ""])
def test_a_category_with_no_listed_parent_has_no_row(fides):
    assert category_mapping(fides) is None


def test_every_row_names_a_category_of_the_taxonomy_and_no_fideslang_category_twice():
    keys = [m.fides for m in CATEGORY_MAPPINGS]
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []
    assert [m.fides for m in CATEGORY_MAPPINGS if (m.category is None) != (m.how == "not exported")] == []
    assert [m.category for m in CATEGORY_MAPPINGS if m.category and not category_known(m.category)] == []


def test_the_documented_table_is_the_one_the_converter_reads():
    assert (ROOT / "docs" / "fides-categories.md").read_text() == categories_reference(), (
        "run `python -m connectors.fides > docs/fides-categories.md`")

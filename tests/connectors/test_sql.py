"""The SQL connectors (accounts, payments, third-party) against their real PostgreSQL databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from connectors.base import Identity
from connectors.estate.loader import EstateError, estate_load, estate_parse
from connectors.estate.stores import estate_database_url
from connectors.registry import connector_get

pytestmark = pytest.mark.usefixtures("estate")


def _load(*subjects: dict) -> None:
    estate_load(estate_parse({"subjects": list(subjects)}))


def _records(connector: str, email: str) -> list:
    return list(connector_get(connector).gather(Identity(email=email)))


def _count(system: str, sql: str, **params) -> int:
    engine = sa.create_engine(estate_database_url(system))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def twins(unique_email):
    """A subject, and one whose email differs only by a plus-suffix."""
    email = unique_email("twin")
    other = email.replace("@", "+promo@")
    full = {
        "accounts": {"name": "Twin", "password": "s3cret-pass", "searches": ["one", "two"], "contacts": [{"name": "Kim"}]},
        "payments": {"cards": [{"number": "5555555555554444", "cvc": "987", "exp": "01/30"}],
                     "transactions": [{"amount": 5, "currency": "GBP", "at": "2026-01-01T00:00:00Z", "item": "x"},
                                      {"amount": 7, "currency": "GBP", "at": "2010-01-01T00:00:00Z", "item": "old"}],
                     "subscriptions": [{"product": "Music", "status": "active"}]},
        "third_party": [{"source": "Northwind Insights", "source_type": "data_broker", "category": "demographic",
                         "acquired_at": "2026-01-01T00:00:00Z", "data": {"income_band": "B"}}],
    }
    _load({"email": email, **full}, {"email": other, **full})
    return email, other


@pytest.mark.django_db
def test_gather_finds_exactly_the_subject_and_not_a_plus_suffixed_twin(twins):
    email, other = twins
    for connector in ("accounts", "payments", "third_party"):
        mine = _records(connector, email)
        assert mine, connector
        theirs = _records(connector, other)
        assert len(mine) == len(theirs)
    searches = [r.fields["query"] for r in _records("accounts", email) if r.category == "searches_commands"]
    assert sorted(searches) == ["one", "two"]
    assert all(r.fields.get("email") != other for r in _records("accounts", email))


@pytest.mark.django_db
def test_secrets_never_leave_the_database_and_cards_show_four_digits(twins):
    email, _ = twins
    records = _records("accounts", email) + _records("payments", email)
    text = repr([r.fields for r in records])
    assert "s3cret-pass" not in text and "sha256$" not in text and "5555555555554444" not in text
    values = [value for r in records for value in r.fields.values()]
    assert "987" not in values and not any("cvc" in r.fields for r in records)  # the security code, too short to grep for
    card = next(r.fields for r in records if r.system == "payments.cards")
    assert card["number"] == "**** 4444"
    assert card["security_code"].startswith("set")
    credentials = next(r.fields for r in records if r.category == "credentials")
    assert credentials["password"].startswith("set") and credentials["password_last_changed"]


@pytest.mark.django_db
def test_third_party_records_carry_their_source_name_and_kind(twins):
    email, _ = twins
    (record,) = _records("third_party", email)
    assert record.category == "demographic"
    assert record.source.as_dict() == {"type": "third_party", "name": "Northwind Insights", "kind": "data_broker"}
    assert record.fields == {"income_band": "B"}


@pytest.mark.django_db
def test_erase_keeps_invoices_under_retention_and_leaves_the_twin_untouched(twins):
    email, other = twins
    receipt = connector_get("payments").erase(Identity(email=email))
    assert receipt.erased["payment"] == 2  # the customer row and the card
    assert receipt.erased["subscription"] == 1
    assert receipt.erased["interactions.account_history"] == 1  # the invoice past its 10 years
    (kept,) = receipt.retained
    assert (kept.category, kept.count) == ("interactions.account_history", 1)
    assert "tax law" in kept.reason and "legal_obligation" in kept.reason
    assert kept.until.year == 2036
    left = _records("payments", email)
    assert [r.system for r in left] == ["payments.transactions"]
    assert left[0].fields["retained_until"].startswith("2036-01-01")
    assert len(_records("payments", other)) == len(_records("payments", other)) > 1


@pytest.mark.django_db
def test_erase_twice_is_harmless_and_finds_nothing_the_second_time(twins):
    email, other = twins
    first = connector_get("accounts").erase(Identity(email=email))
    assert first.erased["searches_commands"] == 2
    second = connector_get("accounts").erase(Identity(email=email))
    assert second.erased == {}
    assert _records("accounts", email) == []
    assert _records("accounts", other)


@pytest.mark.django_db
def test_erasing_third_party_data_suppresses_the_source_and_a_reimport_is_refused(twins):
    email, other = twins
    receipt = connector_get("third_party").erase(Identity(email=email))
    assert receipt.suppressed_sources == ["Northwind Insights"]
    assert _count("third_party", "SELECT count(*) FROM suppressions") >= 1
    assert _count("third_party", "SELECT count(*) FROM suppressions WHERE identity_hash = :e", e=email) == 0  # never the email
    again = {"email": email, "third_party": [{"source": "Northwind Insights", "source_type": "data_broker", "category": "demographic",
                                              "acquired_at": "2026-02-01T00:00:00Z"}]}
    with pytest.raises(EstateError, match=r"subjects\[0\]\.third_party\[0\]\.source"):
        _load(again)
    assert _records("third_party", email) == []
    _load({"email": other, "third_party": again["third_party"]})  # the twin was not erased: allowed


@pytest.mark.django_db
def test_a_partial_deletion_erases_only_the_requested_categories(twins):
    email, _ = twins
    receipt = connector_get("accounts").erase(Identity(email=email), frozenset({"searches_commands"}))
    assert receipt.erased == {"searches_commands": 2}
    categories = {r.category for r in _records("accounts", email)}
    assert "searches_commands" not in categories and "name_contact" in categories


@pytest.mark.django_db
def test_a_mask_strategy_replaces_values_with_a_keyed_hash_and_keeps_the_row(tmp_path, unique_email):
    from connectors.sql import SqlConnector

    email = unique_email("masked")
    _load({"email": email, "accounts": {"name": "Maria Masked", "phone": "+44 1"}})
    dataset = tmp_path / "masked.yaml"
    dataset.write_text(
        "system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n    erase: mask\n"
        "    columns: {name: name_contact, phone: name_contact}\n"
    )
    connector = SqlConnector(name="masked", dataset=str(dataset), mask_key="k")
    try:
        receipt = connector.erase(Identity(email=email))
        assert receipt.erased == {"name_contact": 1}
        (record,) = list(connector.gather(Identity(email=email)))
        assert record.fields["name"] != "Maria Masked" and len(record.fields["name"]) == 64
        assert record.fields["phone"] != record.fields["name"]
        assert connector.erase(Identity(email=email)).erased == {}  # masked already: nothing left to mask
    finally:
        connector.close()


@pytest.mark.django_db
def test_a_table_with_more_rows_than_one_batch_streams_on_from_its_last_key(unique_email):
    from connectors.sql import BATCH

    email = unique_email("many")
    searches = [f"query {n:05d}" for n in range(2 * BATCH + 7)]
    _load({"email": email, "accounts": {"searches": searches}})
    found = [r.fields["query"] for r in _records("accounts", email) if r.category == "searches_commands"]
    assert found == searches

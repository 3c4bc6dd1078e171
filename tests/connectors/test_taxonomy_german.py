"""connectors/taxonomy.py: the taxonomy's wording is read in the active language, German from the
catalogue (dsar/locale), English as dsar/taxonomy.yaml gives it."""

from __future__ import annotations

from django.utils import translation

from connectors.taxonomy import category_info, category_label, taxonomy


def _group_label(group_id: str) -> str:
    return next(group["label"] for group in taxonomy()["groups"] if group["id"] == group_id)


def test_a_category_a_group_and_a_legal_basis_are_labelled_in_german():
    with translation.override("de"):
        assert category_label("payment") == "Zahlungsdaten"
        assert _group_label("money") == "Zahlungen und Abonnements"
        assert taxonomy()["legal_bases"]["contract"]["label"] == "Unser Vertrag mit Ihnen"
        assert taxonomy()["legal_bases"]["consent"]["label"] == "Ihre Einwilligung"


def test_the_same_labels_stay_english_in_english():
    with translation.override("en"):
        assert category_label("payment") == "Payment details"
        assert _group_label("money") == "Payments and subscriptions"
        assert taxonomy()["legal_bases"]["contract"]["label"] == "Our agreement with you"
        assert taxonomy()["legal_bases"]["consent"]["label"] == "Your consent"


def test_a_category_is_described_in_german_with_its_purposes_retention_and_recipients():
    with translation.override("de"):
        info = category_info("name_contact")
    assert info["description"] == ("Ihr Name und die Wege, auf denen wir Sie erreichen können, etwa Ihre E-Mail-Adresse, "
                                   "Ihre Wohnanschrift und Ihre Telefonnummer.")
    assert info["purposes"][0] == "Ihr Konto einrichten und führen"
    assert info["retention"] == "Solange Ihr Konto besteht, danach 30 Tage"
    assert info["recipients"][-1] == "Unser Cloud-Hosting-Anbieter"


def test_a_dotted_child_takes_its_parents_german_label():
    with translation.override("de"):
        assert category_label("interactions.device_usage.games") == "Wie Sie unsere Produkte nutzen"

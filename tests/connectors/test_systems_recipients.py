"""connectors/systems.py: a system file names the organisations its data goes to, checked whole: each
mistake in a recipient is one line `FILE: path: what`, and a file with any is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.systems import Notify, Recipient, SystemsError, Webhook, systems_load

SHOP = """\
name: shop
kind: sql
tables:
  - name: customer
    identity: {email: email}
    columns: {email: name_contact, birth_year: demographic}
recipients:
"""
HOSTING = "  - {name: Hostly GmbH, role: processor, country: DE, notify: {email: dpo@hostly.example}}\n"
ENVIRON = {"HOSTLY_HOOK_SECRET": "s3cret-from-the-environment"}


def _loaded(tmp_path: Path, recipients: str, *, head: str = SHOP, environ: dict[str, str] | None = None):
    (tmp_path / "system.yaml").write_text(head + recipients)
    return systems_load(tmp_path, ENVIRON if environ is None else environ)


def _problems(tmp_path: Path, recipients: str, **options) -> list[str]:
    with pytest.raises(SystemsError) as refused:
        _loaded(tmp_path, recipients, **options)
    prefix = f"{tmp_path / 'system.yaml'}: "
    assert all(line.startswith(prefix) for line in refused.value.problems)
    return [line.removeprefix(prefix) for line in refused.value.problems]


def test_a_recipient_is_read_with_every_key_and_one_that_names_no_categories_receives_all_of_the_systems(tmp_path):
    systems = _loaded(tmp_path, HOSTING + """\
  - name: Postwave Inc.
    role: processor
    categories: [name_contact]
    country: US
    safeguard: standard_contractual_clauses
    safeguard_detail: The 2021 clauses, module 2
    ccpa: disclosed
    notify: {webhook: {url: "https://hooks.postwave.example/erasure", secret: "${HOSTLY_HOOK_SECRET}"}}
  - {name: Tax office, role: public_authority, categories: [name_contact], country: DE, notify: {manual: Note it in the tax file.}}
""")
    assert systems["shop"].recipients == (
        Recipient(name="Hostly GmbH", role="processor", categories=("demographic", "name_contact"), country="DE",
                  notify=Notify(email="dpo@hostly.example")),
        Recipient(name="Postwave Inc.", role="processor", categories=("name_contact",), country="US",
                  safeguard="standard_contractual_clauses", safeguard_detail="The 2021 clauses, module 2", ccpa="disclosed",
                  notify=Notify(webhook=Webhook(url="https://hooks.postwave.example/erasure",
                                                secret=SecretStr("s3cret-from-the-environment")))),
        Recipient(name="Tax office", role="public_authority", categories=("name_contact",), country="DE",
                  notify=Notify(manual="Note it in the tax file.")),
    )
    assert systems["shop"].recipients[1].notify.webhook.secret.get_secret_value() == "s3cret-from-the-environment"


def test_a_system_without_recipients_declares_none(tmp_path):
    assert _loaded(tmp_path, "", head=SHOP.removesuffix("recipients:\n"))["shop"].recipients == ()


def test_the_categories_a_class_of_its_own_holds_are_those_its_class_declares(tmp_path):
    store = "name: files\nkind: object_store\nrecipients:\n"
    [recipient] = _loaded(tmp_path, HOSTING, head=store)["files"].recipients
    assert recipient.categories == ("content", "images", "text_inking_typing", "video_recordings", "voice")
    assert _problems(tmp_path, HOSTING.replace("role: processor", "role: processor, categories: [payment]"), head=store) == [
        "recipients[0].categories[0]: 'payment' is not a category this system holds "
        "(content, images, text_inking_typing, video_recordings, voice)"]


@pytest.mark.parametrize(("recipient", "problem"), [
    (HOSTING.replace("role: processor", "role: processor, categories: [payment]"),
     "recipients[0].categories[0]: 'payment' is not a category this system holds (demographic, name_contact)"),
    (HOSTING.replace("role: processor", "role: processor, categories: [emails]"),
     "recipients[0].categories[0]: 'emails' is not a category of the taxonomy"),
    (HOSTING.replace("country: DE", "country: US"),
     "recipients[0].safeguard: is required, since United States (US) is outside the EEA and no adequacy decision covers it: "
     "one of adequacy_decision, standard_contractual_clauses, binding_corporate_rules, derogation"),
    (HOSTING.replace("country: DE", "country: XK"),
     "recipients[0].country: 'XK' is not an ISO 3166-1 alpha-2 country code (two capital letters, such as DE or US)"),
    (HOSTING.replace("country: DE", "country: de"),
     "recipients[0].country: 'de' is not an ISO 3166-1 alpha-2 country code (two capital letters, such as DE or US)"),
    (HOSTING.replace("country: DE", "country: DE, safeguard: contract"),
     "recipients[0].safeguard: Input should be 'adequacy_decision', 'standard_contractual_clauses', 'binding_corporate_rules' or "
     "'derogation'"),
    (HOSTING.replace("country: DE", "country: DE, safeguard_detail: Clauses signed in 2024"),
     "recipients[0].safeguard_detail: describes a safeguard, but `safeguard` names none"),
    (HOSTING.replace("role: processor", "role: partner"),
     "recipients[0].role: Input should be 'processor', 'controller' or 'public_authority'"),
    (HOSTING.replace("country: DE", "country: DE, ccpa: rented"), "recipients[0].ccpa: Input should be 'disclosed', 'sold' or 'shared'"),
    (HOSTING.replace("Hostly GmbH", "' '"), "recipients[0].name: String should have at least 1 character"),
    (HOSTING.replace("country: DE", "country: DE, contract: signed"), "recipients[0].contract: is not a known setting"),
    (HOSTING.replace(", notify: {email: dpo@hostly.example}", ""), "recipients[0].notify: is required"),
    (HOSTING.replace("{email: dpo@hostly.example}", "{email: dpo@hostly.example, manual: Call them.}"),
     "recipients[0].notify: must give exactly one of email, webhook or manual (got email and manual)"),
    (HOSTING.replace("{email: dpo@hostly.example}", "{}"), "recipients[0].notify: must give exactly one of email, webhook or manual (got none)"),
    (HOSTING.replace("dpo@hostly.example", "dpo at hostly"), "recipients[0].notify.email: 'dpo at hostly' is not an email address"),
    (HOSTING.replace("{email: dpo@hostly.example}", '{webhook: {url: "http://hooks.hostly.example/erasure", secret: "${HOSTLY_HOOK_SECRET}"}}'),
     "recipients[0].notify.webhook.url: must be an https:// URL (http:// only to this machine: localhost, 127.0.0.1, ::1)"),
    (HOSTING.replace("{email: dpo@hostly.example}", '{webhook: {url: "ftp://hooks.hostly.example", secret: "${HOSTLY_HOOK_SECRET}"}}'),
     "recipients[0].notify.webhook.url: must be an https:// URL"),
    (HOSTING.replace("{email: dpo@hostly.example}", '{webhook: {url: "https://hooks.hostly.example/erasure", secret: "s3cret"}}'),
     "recipients[0].notify.webhook.secret: must be read from the environment, `${VAR}`, never written in the file"),
    (HOSTING.replace("{email: dpo@hostly.example}", '{webhook: {url: "https://hooks.hostly.example/erasure", secret: "${HOOK:-s3cret}"}}'),
     "recipients[0].notify.webhook.secret: must be read from the environment, `${VAR}`, never written in the file"),
    (HOSTING.replace("{email: dpo@hostly.example}", '{webhook: {url: "https://hooks.hostly.example/erasure", secret: "${HOOK}"}}'),
     "recipients[0].notify.webhook.secret: ${HOOK} is not set in the environment"),
])
def test_each_mistake_in_a_recipient_is_named_with_its_path_and_what_is_wrong(tmp_path, recipient, problem):
    assert _problems(tmp_path, recipient) == [problem]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8025/erasure", "http://localhost/erasure", "http://[::1]/erasure"])
def test_a_webhook_may_be_plain_http_only_to_this_machine(tmp_path, url):
    recipient = HOSTING.replace("{email: dpo@hostly.example}", f'{{webhook: {{url: "{url}", secret: "${{HOSTLY_HOOK_SECRET}}"}}}}')
    [declared] = _loaded(tmp_path, recipient)["shop"].recipients
    assert declared.notify.webhook.url == url


@pytest.mark.parametrize(("country", "safeguard"), [("DE", None), ("NO", None), ("CH", None), ("JP", None), ("GB", None),
                                                   ("US", "adequacy_decision"), ("SG", "derogation"), ("IN", "binding_corporate_rules")])
def test_within_the_eea_or_under_an_adequacy_decision_a_recipient_needs_no_safeguard_and_elsewhere_it_names_one(tmp_path, country,
                                                                                                             safeguard):
    given = f", safeguard: {safeguard}" if safeguard else ""
    [declared] = _loaded(tmp_path, HOSTING.replace("country: DE", f"country: {country}{given}"))["shop"].recipients
    assert (declared.country, declared.safeguard) == (country, safeguard)


def test_every_mistake_of_every_recipient_is_told_at_once(tmp_path):
    assert _problems(tmp_path, """\
  - {name: Postwave Inc., role: processor, categories: [voice], country: US, notify: {email: privacy@postwave.example}}
  - {name: Hostly GmbH, role: processor, country: DE, safeguard_detail: Signed, notify: {webhook: {url: "https://h.example", secret: s}}}
  - {name: Adreach, role: controller, country: ZZ, notify: {email: a@adreach.example, manual: Ask them.}}
""") == [
        "recipients[1].notify.webhook.secret: must be read from the environment, `${VAR}`, never written in the file",
        "recipients[2].country: 'ZZ' is not an ISO 3166-1 alpha-2 country code (two capital letters, such as DE or US)",
        "recipients[2].notify: must give exactly one of email, webhook or manual (got email and manual)",
    ]
    # Once every key has the right shape, the rules across keys are told together.
    assert _problems(tmp_path, """\
  - {name: Postwave Inc., role: processor, categories: [voice], country: US, notify: {email: privacy@postwave.example}}
  - {name: Hostly GmbH, role: processor, country: DE, safeguard_detail: Signed, notify: {email: dpo@hostly.example}}
""") == [
        "recipients[0].categories[0]: 'voice' is not a category this system holds (demographic, name_contact)",
        "recipients[0].safeguard: is required, since United States (US) is outside the EEA and no adequacy decision covers it: "
        "one of adequacy_decision, standard_contractual_clauses, binding_corporate_rules, derogation",
        "recipients[1].safeguard_detail: describes a safeguard, but `safeguard` names none",
    ]


def test_the_demo_estates_systems_name_their_recipients_and_the_safeguard_of_each_transfer_outside_the_eea(settings):
    assert {name for name, system in settings.DSAR_SYSTEMS.items() if system.recipients} == {
        "accounts", "content", "payments", "support", "third_party"}
    declared = {(system, r.name): (r.country, r.safeguard) for system, s in settings.DSAR_SYSTEMS.items() for r in s.recipients
                if r.safeguard}
    assert declared == {
        ("accounts", "Postwave Inc."): ("US", "standard_contractual_clauses"),
        ("accounts", "Brightreach Ads Inc."): ("US", "standard_contractual_clauses"),
        ("content", "Vocalis Speech Inc."): ("US", "binding_corporate_rules"),
        ("support", "Helpwise Software Inc."): ("US", "standard_contractual_clauses"),
        ("support", "Botanic Skills Pte. Ltd."): ("SG", "derogation"),
    }

"""One subject with data in every category, through all five connectors and the real worker."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from estate.loader import EstateError, estate_load, estate_parse
from estate.stores import estate_database_url
from connectors.taxonomy import category_ids

from ..support.flows import approve, download, file_request, release_as_it_is, subject_view, wait_until_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

CVC = "731"
CARD = "4000056655665556"


def everything(email: str) -> dict:
    """The demo's richest subject under a new address, with a distinctive card."""
    demo = json.loads(open("estate/demo.json").read())["subjects"][0]
    demo["email"] = email
    demo["payments"]["cards"] = [{"number": CARD, "cvc": CVC, "exp": "02/31"}]
    return demo


def _access(api, reviewer, mailoutbox, email, *, held: bool):
    """The archive of an access request for `email`; `held`: it waits for a review of other people's data first."""
    request_id, token = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    if held:
        release_as_it_is(reviewer, request_id)
    return download(api, subject_view(api, request_id, token)["download_url"])


def test_an_access_export_holds_every_category_with_its_sources_and_no_secret(api, reviewer, mailoutbox, unique_email):
    email = unique_email("every")
    estate_load(estate_parse({"subjects": [everything(email)]}))
    archive = _access(api, reviewer, mailoutbox, email, held=True)  # contacts, a shared ticket, CCTV and voice
    manifest = json.loads(archive.read("manifest.json"))

    empty = [c for c in category_ids() if manifest["categories"][c]["records"] == 0]
    assert empty == []
    assert {"type": "third_party", "name": "Northwind Insights", "kind": "data_broker"} in manifest["categories"]["demographic"]["sources"]
    assert {"type": "third_party", "name": "StreamCo", "kind": "co_branded_partner"} in manifest["categories"]["content_consumption"]["sources"]
    assert manifest["categories"]["searches_commands"]["sources"] == [{"type": "observed", "name": None, "kind": None}]
    assert set(manifest["categories"]["images"]["connectors"]) == {"content"}
    assert archive.read("files/content/Documents/cv.txt") == b"Alice Martin - CV\n"

    engine = sa.create_engine(estate_database_url("accounts"))
    with engine.connect() as conn:
        password_hash = conn.execute(sa.text("SELECT password_hash FROM users WHERE email = :e"), {"e": email}).scalar()
    engine.dispose()
    everything_bytes = b"".join(archive.read(name) for name in archive.namelist())
    for secret in ("correct horse battery staple", password_hash, "the comic", CARD):
        assert secret.encode() not in everything_bytes, secret
    text = b"".join(archive.read(n) for n in archive.namelist() if not n.startswith("files/")).decode()
    # Every value, not the text: three digits also turn up by chance in ids and timestamps.
    def leaves(value):
        if isinstance(value, dict):
            return [leaf for item in value.values() for leaf in leaves(item)]
        if isinstance(value, list):
            return [leaf for item in value for leaf in leaves(item)]
        return [str(value)]

    assert not any(leaf == CVC or CVC in leaf.split() for leaf in leaves(json.loads(archive.read("data/payment.json"))))
    assert '"cvc"' not in text
    assert "**** 5556" in text
    credentials = json.loads(archive.read("data/credentials.json"))
    assert {"password", "password_last_changed"} <= set(credentials[0]["fields"])


def test_after_a_deletion_an_access_request_finds_only_what_the_receipt_retained(api, reviewer, mailoutbox, unique_email):
    email = unique_email("gone")
    estate_load(estate_parse({"subjects": [everything(email)]}))
    request_id, token = file_request(api, mailoutbox, type="deletion", email=email)
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    receipt = subject_view(api, request_id, token)["result"]
    (retained,) = receipt["retained"]
    assert (retained["category"], retained["count"], retained["connector"]) == ("interactions.account_history", 1, "payments")
    assert "tax law" in retained["reason"] and retained["until"] == "2036-09-01"
    assert receipt["erased"]["images"] == 1 and receipt["erased"]["interactions.support"] >= 1
    assert receipt["notify_sources"] == ["First Bank Card Services", "Northwind Insights", "StreamCo"]

    manifest = json.loads(_access(api, reviewer, mailoutbox, email, held=False).read("manifest.json"))
    found = {c: v["records"] for c, v in manifest["categories"].items() if v["records"]}
    assert found == {"interactions.account_history": 1}

    with pytest.raises(EstateError, match="suppressed"):
        estate_load(estate_parse({"subjects": [{"email": email, "third_party": everything(email)["third_party"][:1]}]}))

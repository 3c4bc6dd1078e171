"""What may be other people's data (GDPR Art. 15(4)) is flagged where it is gathered: a system file
marks an SQL table or column, an http field, or an object store's category of files `others`, and
the records and files holding it carry the flag; the support system labels a comment by someone who
is neither the subject nor staff as another person's, and flags it. Against the demo estate's real
databases, content store and helpdesk."""

from __future__ import annotations

import textwrap

import pytest
from django.conf import settings

from connectors.base import Identity
from connectors.content import content_storage_from_options
from connectors.http import HttpApi, HttpConnector
from connectors.registry import connector_get
from connectors.sql import SqlConnector, dataset_load
from connectors.systems import SystemsError, system_load
from estate.content_load import content_load
from estate.loader import EstateError, estate_load, estate_parse

pytestmark = [pytest.mark.usefixtures("estate"), pytest.mark.django_db]

AT = "2026-10-05T18:00:00Z"
SHARED = {"topic": "Family plan", "at": AT, "messages": [
    {"from": "customer", "body": "Please add my brother."},
    {"from": "other", "name": "Dan Martin", "email": "dan.martin@example.net", "body": "Dan here, add me please."},
    {"from": "bot", "body": "An agent will be with you soon."},
    {"from": "agent", "agent_name": "Priya", "body": "Done."},
]}
ALONE = {"topic": "Invoice", "at": "2026-10-06T09:00:00Z", "messages": [
    {"from": "customer", "body": "Resend my invoice."}, {"from": "agent", "agent_name": "Priya", "body": "Sent."}]}


def _load(*subjects: dict) -> None:
    estate_load(estate_parse({"subjects": list(subjects)}))


def _flags(records) -> list[tuple[str, dict, bool]]:
    return [(record.category, record.fields, record.others) for record in records]


def test_a_table_marked_others_flags_every_record_and_a_column_marked_others_flags_the_records_holding_a_value(tmp_path, unique_email):
    with_phone, without = unique_email("phone"), unique_email("nophone")
    _load({"email": with_phone, "accounts": {"name": "Pia Phone", "phone": "+44 20 7946 0999", "contacts": [{"name": "Kim", "email": "kim@example.net"}]}},
          {"email": without, "accounts": {"name": "Nils Nophone"}})
    path = tmp_path / "accounts.yaml"
    path.write_text(textwrap.dedent("""\
        system: accounts
        tables:
          - name: users
            identity: {email: email}
            columns: {name: name_contact, phone: {category: name_contact, others: true}}
          - name: contacts
            parent: {table: users, column: user_id}
            others: true
            columns: {name: contacts_relationships, email: contacts_relationships}
        """))
    connector = SqlConnector(name="accounts", dataset=dataset_load(path))
    try:
        assert _flags(connector.gather(Identity(email=with_phone))) == [
            ("name_contact", {"name": "Pia Phone", "phone": "+44 20 7946 0999"}, True),
            ("contacts_relationships", {"name": "Kim", "email": "kim@example.net"}, True),
        ]
        assert _flags(connector.gather(Identity(email=without))) == [("name_contact", {"name": "Nils Nophone"}, False)]
    finally:
        connector.close()


def test_the_demo_accounts_system_flags_a_contact_and_nothing_else_of_the_person(unique_email):
    email = unique_email("contacts")
    _load({"email": email, "accounts": {"name": "Cara Contact", "searches": ["tide times"], "contacts": [{"name": "Bob Martin", "email": "bob@example.net"}]}})
    flagged = [(record.system, record.fields) for record in connector_get("accounts").gather(Identity(email=email)) if record.others]
    assert flagged == [("accounts.contacts", {"name": "Bob Martin", "email": "bob@example.net"})]


def test_the_support_system_labels_a_comment_by_another_customer_as_another_persons_and_flags_the_tickets_holding_it(unique_email):
    email = unique_email("shared")
    _load({"email": email, "support": {"chats": [SHARED, ALONE]}})
    records = list(connector_get("support").gather(Identity(email=email)))
    shape = [(record.category, record.fields["subject"], record.fields["messages"], record.others) for record in records]
    assert shape == [
        ("interactions.support", "Family plan", [
            {"from": "customer", "body": "Please add my brother.", "at": AT},
            {"from": "another person", "body": "Dan here, add me please.", "at": AT},
            {"from": "agent", "body": "Done.", "at": AT, "agent_name": "Priya"},
        ], True),
        ("interactions.bot_usage", "Family plan", [
            {"from": "customer", "body": "Please add my brother.", "at": AT},
            {"from": "another person", "body": "Dan here, add me please.", "at": AT},
            {"from": "bot", "body": "An agent will be with you soon.", "at": AT, "agent_name": "Help Bot"},
        ], True),
        ("interactions.support", "Invoice", [
            {"from": "customer", "body": "Resend my invoice.", "at": "2026-10-06T09:00:00Z"},
            {"from": "agent", "body": "Sent.", "at": "2026-10-06T09:00:00Z", "agent_name": "Priya"},
        ], False),
    ]


def test_an_http_field_marked_others_in_the_short_form_flags_the_record_of_its_category():
    support = settings.DSAR_SYSTEMS["support"].options["api"]
    api = HttpApi.model_validate({
        "connection": support.connection,
        "lookup": {"name": "users", "path": "/api/v2/users/search.json", "params": {"query": "email:{email}"}, "items": "users",
                   "fields": {"name": "name_contact", "user_fields.partner": {"category": "contacts_relationships", "others": True}}},
        "erase": [{"method": "DELETE", "path": "/api/v2/users/{id}.json"}],
    })
    connector = HttpConnector(name="partners", api=api)
    try:
        connector.call("POST", "/api/v2/users.json", json={"user": {"name": "Paula Partner", "email": "paula.partner@example.com",
                                                                    "user_fields": {"partner": "Sam Partner"}}})
        assert _flags(connector.gather(Identity(email="paula.partner@example.com"))) == [
            ("name_contact", {"name": "Paula Partner"}, False),
            ("contacts_relationships", {"user_fields.partner": "Sam Partner"}, True),
        ]
    finally:
        connector.erase(Identity(email="paula.partner@example.com"))
        connector.close()


def test_an_object_stores_category_marked_others_flags_its_files_and_no_other(tmp_path, unique_email):
    email = unique_email("files")
    store = tmp_path / "store"
    content_load(storage=content_storage_from_options(None, {"location": str(store)}), subject_email=email, files=[
        {"path": "Photos/bike.jpg", "base64": "anBlZw==", "category": "images"},
        {"path": "Store visit/cctv.mp4", "base64": "bXA0", "category": "video_recordings"},
        {"path": "Calls/support.ogg", "base64": "b2dn", "category": "voice.calls"},
    ])
    (tmp_path / "files.yaml").write_text(textwrap.dedent(f"""\
        name: files
        kind: object_store
        connection: {{options: {{location: "{store}"}}}}
        categories:
          video_recordings: {{others: true}}
          voice: {{others: true}}
          images: {{others: false}}
        """))
    files = system_load(tmp_path / "files.yaml", {}).connector().gather(Identity(email=email))
    assert sorted((item.category, item.path, item.others) for item in files) == [
        ("images", "Photos/bike.jpg", False),
        ("video_recordings", "Store visit/cctv.mp4", True),
        ("voice.calls", "Calls/support.ogg", True),
    ]


def test_an_object_store_file_marking_a_category_it_does_not_hold_is_refused_with_the_path_and_why(tmp_path):
    (tmp_path / "files.yaml").write_text("name: files\nkind: object_store\ncategories:\n  payment: {others: true}\n")
    with pytest.raises(SystemsError) as refused:
        system_load(tmp_path / "files.yaml", {})
    assert refused.value.problems == [f"{tmp_path / 'files.yaml'}: categories.payment: is not a category this store holds "
                                      "(content, images, text_inking_typing, video_recordings, voice)"]


def test_the_demo_content_store_flags_cctv_and_voice_recordings_and_not_documents_or_photos(unique_email):
    email = unique_email("cctv")
    _load({"email": email, "content": {"files": [
        {"path": "Documents/cv.txt", "base64": "Y3Y=", "category": "content"},
        {"path": "Photos/bike.jpg", "base64": "anBlZw==", "category": "images"},
        {"path": "Voice/memo-1.ogg", "base64": "b2dn", "category": "voice"},
        {"path": "Store visit/cctv-2026-10-02.mp4", "base64": "bXA0", "category": "video_recordings"},
    ]}})
    files = connector_get("content").gather(Identity(email=email))
    assert sorted((item.path, item.others) for item in files) == [
        ("Documents/cv.txt", False), ("Photos/bike.jpg", False), ("Store visit/cctv-2026-10-02.mp4", True), ("Voice/memo-1.ogg", True)]


def test_the_estate_refuses_a_message_from_another_person_without_their_name_and_address(unique_email):
    chat = {"topic": "Shared", "at": AT, "messages": [{"from": "other", "body": "Hello from someone."}]}
    with pytest.raises(EstateError, match=r"subjects\[0\]\.support\.chats\[0\]\.messages\[0\]: .*a message from another person names them"):
        estate_parse({"subjects": [{"email": unique_email("nameless"), "support": {"chats": [chat]}}]})

"""dsar/services.py: what staff upload for a system with no API (`manual_task_gather`), read as CSV or
JSON. Each rule of the file is tested through the upload: a file that breaks one is refused with
its code and a message naming what is wrong, and changes nothing; one that keeps them is staged
record by record. Uploads of other kinds of file are not tested here (that rule is changing)."""

from __future__ import annotations

import json

import pytest

from dsar import services
from dsar.errors import InvalidInput
from dsar.models import AuditEntry, ConnectorTask, Request

from .test_manual_systems import _approved, _task, manual_system  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("manual_system")]

MB = 1024 * 1024


def _upload(request: Request, filename: str, content: bytes) -> ConnectorTask:
    services.manual_task_gather(task_id=_task(request, "archive").pk, actor="staff:rita", filename=filename, content=content)
    return _task(request, "archive")


def _refused(request: Request, filename: str, content: bytes) -> InvalidInput:
    """The refusal of an upload, once it is checked that the upload changed nothing."""
    with pytest.raises(InvalidInput) as refused:
        _upload(request, filename, content)
    stored = _task(request, "archive")
    assert (stored.status, stored.attempts, stored.started_at, stored.counts, stored.output) == ("with_staff", 0, None, {}, None)
    assert not AuditEntry.objects.filter(request=request, action="manual_task_completed").exists()
    return refused.value


def _staged(task: ConnectorTask, category: str) -> list[tuple[str, str, dict]]:
    """(connector, system, fields) of each record the task staged in `category`, from its task row."""
    lines = task.output["inline"][f"{category}.jsonl"].splitlines()
    return [(record["connector"], record["system"], record["fields"]) for record in map(json.loads, lines)]


# --- CSV: the header -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b"",                                   # no line at all
    b"\ncategory,name\nname_contact,Ada\n",  # the header is not the first line
    b"name,category\nAda,name_contact\n",
])
def test_a_csv_whose_first_line_is_not_the_header_is_refused(unique_email, content):
    refused = _refused(_approved(unique_email), "found.csv", content)
    assert (refused.code, refused.detail) == ("upload_malformed", "Line 1 must be the header row: category, then one column per field.")


@pytest.mark.parametrize("header", [
    b"category",             # no field column
    b"category,name,",       # a column without a name
    b"category,,name",
    b"category,name, name ",  # the same name twice, once spaces are trimmed
])
def test_a_csv_header_must_name_each_field_column_once(unique_email, header):
    refused = _refused(_approved(unique_email), "found.csv", header + b"\nname_contact,Ada,London\n")
    assert (refused.code, refused.detail) == ("upload_malformed", "Line 1: each field column needs a name of its own.")


def test_a_csv_header_and_categories_are_read_with_surrounding_spaces_trimmed(unique_email):
    task = _upload(_approved(unique_email), "found.csv", b" category , name \n name_contact ,Ada\n")
    assert task.counts == {"name_contact": 1}
    assert _staged(task, "name_contact") == [("archive", "archive", {"name": "Ada"})]


def test_a_csv_starting_with_a_byte_order_mark_is_read_as_the_same_csv_without_it(unique_email):
    task = _upload(_approved(unique_email), "found.csv", "\ufeffcategory,name\nname_contact,Ada\n".encode())
    assert task.counts == {"name_contact": 1}
    assert _staged(task, "name_contact") == [("archive", "archive", {"name": "Ada"})]


# --- CSV: the rows ----------------------------------------------------------------------------------------


def test_blank_rows_are_skipped_wherever_they_are_and_an_empty_cell_is_no_field(unique_email):
    content = b"category,name,city\n\nname_contact,Ada,\n , \n,,\nname_contact,,Paris\npayment\n"
    task = _upload(_approved(unique_email), "found.csv", content)
    assert task.counts == {"name_contact": 2, "payment": 1}
    assert _staged(task, "name_contact") == [("archive", "archive", {"name": "Ada"}), ("archive", "archive", {"city": "Paris"})]
    assert _staged(task, "payment") == [("archive", "archive", {})]


def test_a_csv_row_with_more_cells_than_the_header_is_refused_naming_its_line_counting_blank_ones(unique_email):
    refused = _refused(_approved(unique_email), "found.csv", b"category,name\n\nname_contact,Ada\n,\nname_contact,Ada,London\n")
    assert (refused.code, refused.detail) == ("upload_malformed", "Line 5: 3 cells, but the header names 2 columns.")


def test_a_csv_with_old_mac_line_endings_is_read_line_by_line(unique_email):
    task = _upload(_approved(unique_email), "found.csv", b"category,name\rname_contact,Ada\rpayment,\r")
    assert task.counts == {"name_contact": 1, "payment": 1}


def test_a_quoted_cell_keeps_its_line_breaks_as_written(unique_email):
    task = _upload(_approved(unique_email), "found.csv", b'category,address\r\nname_contact,"1 Main St\r\nLondon"\r\n')
    assert _staged(task, "name_contact") == [("archive", "archive", {"address": "1 Main St\r\nLondon"})]


def test_a_cell_too_long_for_csv_is_refused_naming_its_line(unique_email):
    content = b"category,name\nname_contact,Ada\nname_contact," + b"x" * 200_000 + b"\n"
    refused = _refused(_approved(unique_email), "found.csv", content)
    assert (refused.code, refused.detail) == ("upload_malformed", "Line 3: not CSV: field larger than field limit (131072).")


# --- JSON ---------------------------------------------------------------------------------------------------


def test_a_file_that_is_not_json_is_refused_with_where_the_parser_stopped(unique_email):
    refused = _refused(_approved(unique_email), "found.json", b'[{"category": "payment", "fields": {}},]')
    assert (refused.code, refused.detail) == ("upload_malformed", "The file is not JSON: Expecting value: line 1 column 40 (char 39).")


@pytest.mark.parametrize("content", [b'{"category": "payment", "fields": {}}', b'"payment"', b"null"])
def test_json_that_is_not_a_list_is_refused(unique_email, content):
    refused = _refused(_approved(unique_email), "found.json", content)
    assert (refused.code, refused.detail) == ("upload_malformed", 'The file must hold a JSON list of {"category": id, "fields": {...}}.')


@pytest.mark.parametrize("item", [
    '"payment"',
    '["payment", {}]',
    '{"category": "payment"}',
    '{"fields": {}}',
    '{"category": "payment", "fields": {}, "source": "paper"}',
    '{"category": 7, "fields": {}}',
    '{"category": "payment", "fields": ["4242"]}',
    '{"category": "payment", "fields": null}',
])
def test_a_json_item_that_is_not_a_category_and_its_fields_is_refused_naming_it(unique_email, item):
    content = f'[{{"category": "payment", "fields": {{}}}}, {item}]'.encode()
    refused = _refused(_approved(unique_email), "found.json", content)
    assert (refused.code, refused.detail) == ("upload_malformed", 'Item 2: must be {"category": id, "fields": {...}}.')


def test_a_json_items_fields_are_staged_as_they_are(unique_email):
    content = b'[{"category": "name_contact", "fields": {"name": "Ada", "aliases": ["A. L."], "age": 36, "empty": ""}}]'
    task = _upload(_approved(unique_email), "found.json", content)
    assert task.counts == {"name_contact": 1}
    assert _staged(task, "name_contact") == [("archive", "archive", {"name": "Ada", "aliases": ["A. L."], "age": 36, "empty": ""})]


# --- Either kind: the bytes and the categories -------------------------------------------------------------


def test_a_file_of_exactly_the_size_limit_is_read_and_one_byte_more_is_refused(unique_email):
    record = b'[{"category": "payment", "fields": {"card_last4": "4242"}}]'
    at_limit = record + b" " * (5 * MB - len(record))
    task = _upload(_approved(unique_email), "found.json", at_limit)
    assert task.counts == {"payment": 1}
    refused = _refused(_approved(unique_email), "found.json", at_limit + b" ")
    assert (refused.code, refused.detail) == ("upload_too_large", "The file is larger than 5 MB.")


@pytest.mark.parametrize(("filename", "content"), [
    ("found.csv", b"category,name\nname_contact,Ada \xe9\n"),  # Latin-1, as an old spreadsheet saves it
    ("found.json", b'[{"category": "name_contact", "fields": {"name": "\xff"}}]'),
])
def test_a_file_that_is_not_utf8_is_refused(unique_email, filename, content):
    refused = _refused(_approved(unique_email), filename, content)
    assert (refused.code, refused.detail) == ("upload_malformed", "The file is not UTF-8 text.")


@pytest.mark.parametrize(("filename", "content", "message"), [
    ("found.csv", b"category,name\nname_contact,Ada\nnonsense,Ada\n", "Line 3: 'nonsense' is not a category of the taxonomy."),
    ("found.json", b'[{"category": "payment", "fields": {}}, {"category": "nonsense", "fields": {}}]',
     "Item 2: 'nonsense' is not a category of the taxonomy."),
    ("found.csv", b"category,name\nname_contact,Ada\ninterests,Ada\n",
     "Line 3: archive does not hold 'interests'; its categories are name_contact, payment."),
    ("found.json", b'[{"category": "interests", "fields": {"topic": "chess"}}]',
     "Item 1: archive does not hold 'interests'; its categories are name_contact, payment."),
])
def test_a_record_in_a_category_the_system_does_not_hold_is_refused_naming_where_it_is(unique_email, filename, content, message):
    refused = _refused(_approved(unique_email), filename, content)
    assert (refused.code, refused.detail) == ("invalid_category", message)

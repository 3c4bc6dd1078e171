"""Staging: a connector's records written as JSON lines and CSV rows, and its files listed or copied
into a zip of the task's own, in the task row or in the work area."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage

from connectors.base import OBSERVED, Identity, PermanentError, Record, Source
from dsar.exports import Staged, stage_discard, stage_gather
from dsar.exports.staging import StagedCategory, StagedFile

from ...support.listed import ListedConnector

AT = dt.datetime(2026, 11, 30, 9, 15, 0, 123456, tzinfo=dt.UTC)
BROKER = Source("third_party", "Acme Data Ltd", "data_broker")
MIB = 1024 * 1024


def _stage(connector, categories, request_id: str = "r-staging") -> Staged:
    return stage_gather(connector, Identity(email="pat@example.com"), frozenset(categories), request_id=request_id, attempt=1)


def _text(staged: Staged, stream: str) -> str:
    return b"".join(staged.blocks(stream)).decode()


def test_records_are_staged_as_json_lines_and_csv_rows():
    connector = ListedConnector(name="accounts", records=[
        Record("searches_commands", {"query": 'say "hi", ok'}, "accounts.searches", OBSERVED, AT),
        Record("searches_commands", {"query": "line\nbreak", "lang": "en"}, "accounts.searches", OBSERVED, AT.replace(microsecond=0)),
        Record("searches_commands", {"query": "café ☕", "meta": {"score": 2, "tags": ["a", "b"]}}, "third_party.records", BROKER, None),
    ])
    staged = _stage(connector, {"searches_commands"})
    assert staged.counts == {"searches_commands": 3}
    assert staged.categories == {"searches_commands": StagedCategory(
        records=3, columns=["query", "lang", "meta.score", "meta.tags"], rectangular=False, sources=[OBSERVED, BROKER])}
    assert list(staged.lines("searches_commands.jsonl")) == [
        '{"connector":"accounts","system":"accounts.searches","source":{"type":"observed","name":null,"kind":null},'
        '"collected_at":"2026-11-30T09:15:00.123456+00:00","fields":{"query":"say \\"hi\\", ok"}}',
        '{"connector":"accounts","system":"accounts.searches","source":{"type":"observed","name":null,"kind":null},'
        '"collected_at":"2026-11-30T09:15:00+00:00","fields":{"query":"line\\nbreak","lang":"en"}}',
        '{"connector":"accounts","system":"third_party.records","source":{"type":"third_party","name":"Acme Data Ltd","kind":"data_broker"},'
        '"collected_at":null,"fields":{"query":"café ☕","meta":{"score":2,"tags":["a","b"]}}}',
    ]
    # The rows have the columns known when each was written; the first one lacks the later ones.
    assert _text(staged, "searches_commands.csv") == (
        'accounts,accounts.searches,observed,,,2026-11-30T09:15:00.123456+00:00,"say ""hi"", ok"\r\n'
        'accounts,accounts.searches,observed,,,2026-11-30T09:15:00+00:00,"line\nbreak",en\r\n'
        'accounts,third_party.records,third_party,Acme Data Ltd,data_broker,,café ☕,,2,"[""a"", ""b""]"\r\n'
    )


def test_categories_not_asked_for_are_left_out_and_a_dotted_child_is_staged_under_its_parent():
    connector = ListedConnector(name="crm", records=[
        Record("interests.sports", {"team": "Lions"}, "crm.fans", OBSERVED),
        Record("searches_commands", {"query": "not asked for"}, "crm.searches", OBSERVED),
    ])
    staged = _stage(connector, {"interests"})
    assert staged.counts == {"interests": 1}
    assert [json.loads(line)["fields"] for line in staged.lines("interests.jsonl")] == [{"team": "Lions"}]


@pytest.mark.parametrize(("item", "reason"), [
    (Record("dna_sequences", {"x": 1}, "crm"), "crm yielded a record in 'dna_sequences', which is not a category of the taxonomy"),
    (Record("searches_commands", ["not", "a", "mapping"], "crm"), "crm yielded a searches_commands record whose fields are not a mapping"),
    ("a line of text", "crm yielded str, not a Record or FileItem"),
], ids=["unknown category", "fields not a mapping", "not a record"])
def test_malformed_output_fails_with_its_reason_even_in_a_category_not_asked_for(item, reason):
    class Malformed(ListedConnector):
        def gather(self, identity):
            yield item

    with pytest.raises(PermanentError) as raised:
        _stage(Malformed(name="crm"), {"interests"})
    assert str(raised.value) == reason


@pytest.mark.django_db
def test_a_gather_past_the_inline_size_goes_to_the_work_area_and_reads_back_the_same():
    records = [Record("searches_commands", {"query": f"query {n:05d}"}, "accounts.searches", OBSERVED) for n in range(4000)]
    staged = _stage(ListedConnector(name="accounts", records=records), {"searches_commands"}, request_id="r-spilled")
    try:
        assert staged.inline is None and staged.prefix == "work/r-spilled/accounts/1"
        assert sorted(default_storage.listdir("work/r-spilled/accounts/1")[1]) == ["searches_commands.csv", "searches_commands.jsonl"]
        lines = list(staged.lines("searches_commands.jsonl"))
        assert len(lines) == 4000
        assert lines[3999] == ('{"connector":"accounts","system":"accounts.searches","source":{"type":"observed","name":null,"kind":null},'
                               '"collected_at":null,"fields":{"query":"query 03999"}}')
        assert _text(staged, "searches_commands.csv").splitlines()[3999] == "accounts,accounts.searches,observed,,,,query 03999"
    finally:
        stage_discard("r-spilled")
    assert not default_storage.exists("work/r-spilled/accounts/1/searches_commands.jsonl")


def test_what_the_task_row_holds_reads_back_as_the_same_values():
    connector = ListedConnector(name="accounts", records=[Record("searches_commands", {"q": "x"}, "accounts.searches", BROKER)],
                                files={"notes/a.txt": b"hello\n"})
    staged = _stage(connector, {"searches_commands", "content"})
    row = json.loads(json.dumps(staged.as_json()))  # as the JSON column stores it
    assert Staged.from_json(row) == staged
    assert row["categories"]["searches_commands"]["sources"] == [{"type": "third_party", "name": "Acme Data Ltd", "kind": "data_broker"}]


@pytest.mark.django_db
def test_files_past_the_threshold_are_copied_into_the_tasks_own_zip_with_their_sha256():
    big, bigger, small = bytes(range(256)) * (17 * MIB // 256), b"\x07" * (18 * MIB), b"small\n"
    connector = ListedConnector(name="photos", files={"a.bin": big, "b/c.bin": bigger, "d.txt": small})
    staged = _stage(connector, {"content"}, request_id="r-zipped")
    try:
        assert staged.files == 3 and staged.file_bytes == 35 * MIB + 6
        assert list(staged.staged_files()) == [
            StagedFile("files/photos/a.bin", "a.bin", 17 * MIB, hashlib.sha256(big).hexdigest()),
            StagedFile("files/photos/b/c.bin", "b/c.bin", 18 * MIB, hashlib.sha256(bigger).hexdigest()),
            StagedFile("files/photos/d.txt", "d.txt", 6, hashlib.sha256(small).hexdigest()),
        ]
        assert staged.files_zip == "work/r-zipped/photos/1/files.zip"
        with default_storage.open(staged.files_zip, "rb") as handle:
            zipped = zipfile.ZipFile(io.BytesIO(handle.read()))
        assert [(i.filename, i.compress_type) for i in zipped.infolist()] == [
            ("files/photos/a.bin", zipfile.ZIP_STORED), ("files/photos/b/c.bin", zipfile.ZIP_STORED), ("files/photos/d.txt", zipfile.ZIP_STORED)]
        assert zipped.read("files/photos/d.txt") == small
    finally:
        stage_discard("r-zipped")


def test_a_few_small_files_are_only_listed_and_each_is_a_record_of_its_category():
    connector = ListedConnector(name="docs", files={"notes/a.txt": b"hello\n", "/b.txt": b""})
    staged = _stage(connector, {"content"})
    assert staged.files_zip is None
    assert list(staged.staged_files()) == [StagedFile("files/docs/notes/a.txt", "notes/a.txt", 6), StagedFile("files/docs/b.txt", "/b.txt", 0)]
    assert [json.loads(line)["fields"] for line in staged.lines("content.jsonl")] == [
        {"file": "files/docs/notes/a.txt", "bytes": 6}, {"file": "files/docs/b.txt", "bytes": 0}]


def test_a_files_member_name_is_cleaned_of_control_characters_and_dot_parts_and_made_unique():
    connector = ListedConnector(name="docs", files={"scan.pdf": b"1", "./scan.pdf": b"2", "a/../scan.pdf": b"3", "x\\y/\x00bad\nname": b"4",
                                                    "notes": b"5", "notes/": b"6", "../..": b"7"})
    staged = _stage(connector, {"content"})
    assert [file.path for file in staged.staged_files()] == [
        "files/docs/scan.pdf", "files/docs/scan (2).pdf", "files/docs/a/scan.pdf", "files/docs/x/y/_bad_name",
        "files/docs/notes", "files/docs/notes (2)", "files/docs/file"]
    assert [json.loads(line)["fields"]["file"] for line in staged.lines("content.jsonl")] == [file.path for file in staged.staged_files()]


FORMULA_LIKE = ['=HYPERLINK("https://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def test_a_text_cell_that_starts_like_a_formula_is_staged_with_a_leading_quote_and_its_json_line_keeps_it():
    connector = ListedConnector(name="accounts", records=[
        Record("searches_commands", {"query": value}, "accounts.searches", OBSERVED) for value in FORMULA_LIKE])
    staged = _stage(connector, {"searches_commands"})
    assert _text(staged, "searches_commands.csv") == (
        "accounts,accounts.searches,observed,,,,\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"x\"\")\"\r\n"
        "accounts,accounts.searches,observed,,,,'+1+1\r\n"
        "accounts,accounts.searches,observed,,,,'-2+3\r\n"
        "accounts,accounts.searches,observed,,,,'@SUM(A1)\r\n"
        "accounts,accounts.searches,observed,,,,'\tcmd\r\n"
        "accounts,accounts.searches,observed,,,,\"'\rcmd\"\r\n"
    )
    assert [json.loads(line)["fields"]["query"] for line in staged.lines("searches_commands.jsonl")] == [
        '=HYPERLINK("https://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def test_a_negative_number_is_staged_as_a_number_and_the_same_digits_as_text_get_a_leading_quote():
    fields = {"a": -5, "b": -0.5, "c": Decimal("-5.10"), "d": "-5", "e": False}
    connector = ListedConnector(name="accounts", records=[Record("searches_commands", fields, "accounts.searches", OBSERVED)])
    staged = _stage(connector, {"searches_commands"})
    assert _text(staged, "searches_commands.csv") == "accounts,accounts.searches,observed,,,,-5,-0.5,-5.10,'-5,False\r\n"


def test_a_value_neither_text_nor_a_number_is_judged_by_the_text_the_csv_writes_for_it():
    fields = {"ago": dt.timedelta(days=-1), "day": dt.date(2026, 1, 2)}
    connector = ListedConnector(name="accounts", records=[Record("searches_commands", fields, "accounts.searches", OBSERVED)])
    staged = _stage(connector, {"searches_commands"})
    assert _text(staged, "searches_commands.csv") == "accounts,accounts.searches,observed,,,,\"'-1 day, 0:00:00\",2026-01-02\r\n"


def test_a_source_name_that_starts_like_a_formula_gets_a_leading_quote_in_the_rows_fixed_cells():
    typed = Source("third_party", "=cmd|' /C calc'!A0", "data_broker")
    connector = ListedConnector(name="accounts", records=[Record("searches_commands", {"q": "x"}, "accounts.searches", typed)])
    staged = _stage(connector, {"searches_commands"})
    assert _text(staged, "searches_commands.csv") == (
        "accounts,accounts.searches,third_party,'=cmd|' /C calc'!A0,data_broker,,x\r\n")

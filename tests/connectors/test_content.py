"""The content storage connector against real stores: a local directory, and S3 served by moto."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator

import pytest
from botocore.config import Config
from django.core.files.base import ContentFile

from connectors.base import PROVIDED, Identity, PermanentError, TransientError
from connectors.content import ContentStorageConnector, content_storage_from_options, subject_prefix
from estate.content_load import content_bytes, content_load
from devstack import free_port

from ..support.s3 import S3_BACKEND, s3_bucket_create, s3_client, s3_endpoint, s3_options  # noqa: F401 (s3_endpoint: a fixture)

MIB = 1024 * 1024
PAT = "pat@example.com"
PAT_WORK = "pat+work@example.com"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Not a multiple of the generator's chunk, and above S3's multipart threshold (8 MiB), so both the
# partial last chunk and a multipart upload from an unseekable stream are exercised.
BIG_SIZE = 9 * MIB + 123
PAT_FILES = [
    {"path": "Documents/letter to the bank.txt", "category": "content", "base64": _b64(b"Dear bank,\nplease...\n")},
    {"path": "Photos/2024/beach.jpg", "category": "images", "base64": _b64(bytes(range(256)) * 8)},
    {"path": "Recordings/memo.ogg", "category": "voice", "size_bytes": BIG_SIZE},
    {"path": "lobby/2024-05-01.mp4", "category": "video_recordings", "base64": _b64(b"\x00\x00\x00\x18ftypmp42")},
    {"path": "ink/signature.isf", "category": "text_inking_typing", "base64": _b64(b"ink strokes")},
]
PAT_WORK_FILES = [
    {"path": "Documents/letter to the bank.txt", "category": "content", "base64": _b64(b"a different letter")},
    {"path": "Photos/team.png", "category": "images", "base64": _b64(b"\x89PNG team photo")},
]


def _content(spec: dict) -> bytes:
    if "base64" in spec:
        return base64.b64decode(spec["base64"])
    return b"".join(content_bytes(spec["path"], spec["size_bytes"]))


def test_a_generated_file_is_a_prefix_of_its_paths_pattern_repeated_whatever_its_size():
    path = "Recordings/memo.ogg"
    pattern = hashlib.shake_256(f"dsar-estate-content:{path}".encode()).digest(MIB)
    for size in (0, 1, 2048, MIB, MIB + 1, 3 * MIB - 5):
        assert b"".join(content_bytes(path, size)) == (pattern * 3)[:size]


def _listing(files: list[dict]) -> set[tuple[str, str, int]]:
    return {(spec["category"], spec["path"], len(_content(spec))) for spec in files}


def _gathered(connector: ContentStorageConnector, email: str) -> set[tuple[str, str, int]]:
    return {(item.category, item.path, item.size) for item in connector.gather(Identity(email=email))}


@pytest.fixture(params=["local", "s3"])
def options(request, tmp_path) -> dict:
    """The connector's options for an empty store: a temporary directory, or a new S3 bucket."""
    if request.param == "local":
        return {"storage_options": {"location": str(tmp_path / "content")}}
    endpoint = request.getfixturevalue("s3_endpoint")
    return {"backend": S3_BACKEND, "storage_options": s3_options(endpoint, s3_bucket_create(endpoint))}


@pytest.fixture
def storage(options):
    """The store, built the way the demo-estate loader builds it, holding both subjects' files."""
    storage = content_storage_from_options(options.get("backend"), options["storage_options"])
    assert content_load(storage=storage, subject_email=PAT, files=PAT_FILES) == sum(len(_content(s)) for s in PAT_FILES)
    content_load(storage=storage, subject_email=PAT_WORK, files=PAT_WORK_FILES)
    return storage


@pytest.fixture
def connector(options, storage) -> Iterator[ContentStorageConnector]:
    connector = ContentStorageConnector(name="content", **options)
    yield connector
    connector.close()


def test_subject_prefix_is_an_opaque_key_of_the_normalised_email():
    assert subject_prefix("  Pat@Example.COM ") == subject_prefix(PAT) == f"subjects/{hashlib.sha256(PAT.encode()).hexdigest()}"
    assert subject_prefix(PAT_WORK) != subject_prefix(PAT)


def test_gather_returns_exactly_the_subjects_files_with_categories_paths_and_sizes(connector):
    items = list(connector.gather(Identity(email=PAT)))

    assert {(item.category, item.path, item.size) for item in items} == _listing(PAT_FILES)
    assert len(items) == len(PAT_FILES)
    assert all(item.ref.startswith(subject_prefix(PAT) + "/") and PAT not in item.ref for item in items)
    assert all(item.source == PROVIDED for item in items)
    assert _gathered(connector, PAT_WORK) == _listing(PAT_WORK_FILES)


def test_gather_dates_each_file_by_when_it_was_stored(connector):
    now = dt.datetime.now(dt.UTC)
    stored = [item.collected_at for item in connector.gather(Identity(email=PAT))]
    assert len(stored) == len(PAT_FILES)
    assert all(now - dt.timedelta(minutes=5) <= at <= now for at in stored)  # the fixture stored them just now


def test_a_file_given_a_time_is_refused_by_an_object_store_and_nothing_changes(s3_endpoint):
    options = s3_options(s3_endpoint, s3_bucket_create(s3_endpoint))
    storage = content_storage_from_options(S3_BACKEND, options)
    content_load(storage=storage, subject_email=PAT, files=PAT_FILES[:1])
    dated = {**PAT_FILES[3], "at": dt.datetime(2026, 10, 2, 18, tzinfo=dt.UTC)}

    with pytest.raises(ValueError, match="a file's `at` needs a store on a local disk"):
        content_load(storage=storage, subject_email=PAT, files=[dated])
    assert _gathered(ContentStorageConnector(name="content", backend=S3_BACKEND, storage_options=options), PAT) == _listing(PAT_FILES[:1])


def test_open_file_returns_the_exact_bytes(connector):
    by_path = {item.path: item for item in connector.gather(Identity(email=PAT))}

    for spec in PAT_FILES:
        with connector.open_file(by_path[spec["path"]].ref) as handle:
            digest, length = hashlib.sha256(), 0
            while chunk := handle.read(MIB):
                digest.update(chunk)
                length += len(chunk)
        expected = _content(spec)
        assert (length, digest.hexdigest()) == (len(expected), hashlib.sha256(expected).hexdigest()), spec["path"]


def test_erase_removes_every_file_of_the_subject_and_leaves_the_others(connector, storage):
    receipt = connector.erase(Identity(email=PAT))

    assert receipt.erased == {spec["category"]: 1 for spec in PAT_FILES}
    assert _gathered(connector, PAT) == set()
    assert subject_prefix(PAT).split("/")[1] not in storage.listdir("subjects")[0]
    assert _gathered(connector, PAT_WORK) == _listing(PAT_WORK_FILES)


def test_erase_twice_is_harmless(connector):
    connector.erase(Identity(email=PAT))
    again = connector.erase(Identity(email=PAT))

    assert again.erased == {}
    assert _gathered(connector, PAT) == set()
    assert _gathered(connector, PAT_WORK) == _listing(PAT_WORK_FILES)


def test_erase_with_categories_only_removes_those(connector):
    receipt = connector.erase(Identity(email=PAT), frozenset({"images", "voice"}))

    assert receipt.erased == {"images": 1, "voice": 1}
    assert _gathered(connector, PAT) == _listing([s for s in PAT_FILES if s["category"] not in {"images", "voice"}])
    assert _gathered(connector, PAT_WORK) == _listing(PAT_WORK_FILES)


def test_content_load_replaces_the_subjects_files(connector, storage):
    content_load(storage=storage, subject_email=PAT, files=PAT_FILES[:1])

    assert _gathered(connector, PAT) == _listing(PAT_FILES[:1])
    assert _gathered(connector, PAT_WORK) == _listing(PAT_WORK_FILES)


def test_a_large_size_bytes_file_reaches_s3_in_parts_not_in_one_buffered_request(s3_endpoint):
    bucket = s3_bucket_create(s3_endpoint)
    storage = content_storage_from_options(S3_BACKEND, s3_options(s3_endpoint, bucket))
    big = next(spec for spec in PAT_FILES if "size_bytes" in spec)

    content_load(storage=storage, subject_email=PAT, files=[big])

    head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key=f"{subject_prefix(PAT)}/{big['category']}/{big['path']}")
    assert head["ContentLength"] == BIG_SIZE
    assert "-" in head["ETag"], "a multipart upload's ETag ends in -<parts>; a single PUT's does not"


@pytest.mark.parametrize("ref", ["exports/secret.txt", "subjects/../exports/secret.txt", "/exports/secret.txt", "subjects/x"])
def test_open_file_refuses_a_ref_outside_subjects(connector, storage, ref):
    storage.save("exports/secret.txt", ContentFile(b"not a subject's file"))

    with pytest.raises(PermanentError):
        connector.open_file(ref)


def test_unreachable_s3_endpoint_is_a_transient_error():
    # A single attempt keeps the test quick; botocore's own retries would only delay the same answer.
    options = s3_options(f"http://127.0.0.1:{free_port()}", "content", client_config=Config(retries={"total_max_attempts": 1}))
    connector = ContentStorageConnector(name="content", backend=S3_BACKEND, storage_options=options)

    with pytest.raises(TransientError):
        list(connector.gather(Identity(email=PAT)))


def test_missing_bucket_is_a_permanent_error(s3_endpoint):
    options = s3_options(s3_endpoint, "no-such-bucket")
    connector = ContentStorageConnector(name="content", backend=S3_BACKEND, storage_options=options)

    with pytest.raises(PermanentError):
        list(connector.gather(Identity(email=PAT)))

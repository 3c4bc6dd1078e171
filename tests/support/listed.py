"""A connector for tests that yields the records and files it is configured with, and a fixture
that makes such connectors the deployment's systems (DSAR_SYSTEMS), as the final step looks them up."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.base import Connector, FileItem, PermanentError, Record
from connectors.registry import connectors_reset
from connectors.systems import System


class ListedConnector(Connector):
    """Yields `records`, then one FileItem per entry of `files` (path -> bytes, in category `content`;
    a value of None is a file that cannot be read)."""

    def __init__(self, *, name: str | None = None, records: list[Record] = (), files: dict[str, bytes | None] | None = None,
                 file_category: str = "content", unknown_size: bool = False, **options: Any) -> None:
        super().__init__(name=name, **options)
        self.records, self.files = list(records), dict(files or {})
        self.file_category, self.unknown_size = file_category, unknown_size
        self.categories = frozenset({r.category for r in self.records} | ({file_category} if self.files else set()))

    def gather(self, identity) -> Iterator[Record | FileItem]:
        yield from self.records
        for path, data in self.files.items():
            size = None if self.unknown_size or data is None else len(data)
            yield FileItem(category=self.file_category, path=path, ref=path, size=size)

    def open_file(self, ref: str):
        if self.files[ref] is None:
            raise PermanentError(f"{self.name}: {ref} cannot be read (planned)")
        return io.BytesIO(self.files[ref])

    def erase(self, identity, categories=None):
        raise PermanentError("a listed connector erases nothing")


@pytest.fixture
def listed(settings) -> Iterator[Callable[..., dict[str, Connector]]]:
    """`listed(name={"records": [...], "files": {...}}, ...)` configures those connectors (and no
    others) and returns them by name, as the registry holds them."""
    from connectors.registry import connector_get

    def configure(**connectors: dict) -> dict[str, Connector]:
        settings.DSAR_SYSTEMS = {name: System(name, f"{__name__}.ListedConnector", options) for name, options in connectors.items()}
        connectors_reset()
        return {name: connector_get(name) for name in connectors}

    yield configure
    connectors_reset()

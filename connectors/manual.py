"""Systems with no API (kind `manual`): staff work each request's task by hand.

No worker runs this connector: a request's task for a manual system waits with staff
(dsar/processing.py), who upload what the system holds or confirm what they erased in the console
(dsar/services.py, `manual_task_gather` and `manual_task_erase`). The connector only says what the system may hold and
what staff are to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from django.core.files.storage import default_storage

from .base import Connector, ErasureReceipt, FileItem, Identity, PermanentError, Record


class ManualConnector(Connector):
    """A system staff work by hand, following `instructions`, for the `categories` it may hold."""

    def __init__(self, *, name: str, instructions: str, categories: list[str], assignee: str | None = None) -> None:
        super().__init__(name=name)
        self.instructions = instructions
        self.categories = frozenset(categories)
        self.assignee = assignee

    def gather(self, identity: Identity) -> Iterator[Record | FileItem]:
        """Nothing: the product cannot read the system; what it holds reaches an export through staff."""
        return iter(())

    def open_file(self, ref: str) -> BinaryIO:
        """A file staff uploaded for a request, kept in the product's storage, in the request's
        work area, until its export is built."""
        if not ref.startswith("work/"):
            raise PermanentError(f"{self.name}: {ref!r} is not a file staff uploaded")
        return default_storage.open(ref, "rb")

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Never run by a worker; staff erase by hand and confirm it in the console."""
        raise PermanentError(f"{self.name} is worked by staff by hand, not by a worker")

    def erase_preview(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """No preview: staff erase by hand, as the system's instructions say."""
        raise PermanentError(f"{self.name} has no API: staff erase by hand, following its instructions")

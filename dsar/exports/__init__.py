"""Gathered records on their way to the person: staging, the export archive, its report, deletion
receipts and downloads. The rest of the workflow uses what this facade names."""

from django.core.files.storage import default_storage  # the download view opens archives through it

from .archive import Archive, archive_build
from .downloads import archive_encrypted, download_url, export_for_download
from .receipts import receipt_as_dict, receipt_merge
from .report import report_prepare
from .retention import RETENTION_REASONS
from .staging import Staged, stage_discard, stage_gather
from .storage import storage_delete, storage_delete_tree, storage_save_bytes

__all__ = [
    "Archive",
    "RETENTION_REASONS",
    "Staged",
    "archive_build",
    "archive_encrypted",
    "default_storage",
    "download_url",
    "export_for_download",
    "receipt_as_dict",
    "receipt_merge",
    "report_prepare",
    "stage_discard",
    "stage_gather",
    "storage_delete",
    "storage_delete_tree",
    "storage_save_bytes",
]

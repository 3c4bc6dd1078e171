"""Gathered records on their way to the person: staging, the export archive, its report, deletion
receipts and downloads. The rest of the workflow uses what this facade names."""

from django.core.files.storage import default_storage  # the download view opens archives through it

from .archive import Archive, archive_build
from .downloads import archive_encrypted, download_url, export_for_download
from .receipts import receipt_as_dict, receipt_merge
from .refusals import child_withheld_reason, refusals_in_words
from .report import report_prepare
from .staging import Staged, stage_discard, stage_gather
from .storage import storage_delete, storage_delete_tree, storage_save_bytes

__all__ = [
    "Archive",
    "Staged",
    "archive_build",
    "archive_encrypted",
    "child_withheld_reason",
    "default_storage",
    "download_url",
    "export_for_download",
    "receipt_as_dict",
    "receipt_merge",
    "refusals_in_words",
    "report_prepare",
    "stage_discard",
    "stage_gather",
    "storage_delete",
    "storage_delete_tree",
    "storage_save_bytes",
]

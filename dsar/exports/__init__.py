"""Gathered records on their way to the person: staging, the export archive, its report, deletion
receipts and downloads. The rest of the workflow uses what this facade names."""

from django.core.files.storage import default_storage  # the download view opens archives through it

from .archive import Archive, archive_build
from .downloads import (ExportPart, archive_encrypted, download_links, download_url, download_urls, export_for_download,
                        export_part_for_download, export_parts, export_parts_as_json, export_paths)
from .receipts import receipt_as_dict, receipt_in_words, receipt_merge
from .referrals import referral_as_dict, referral_in_words
from .refusals import child_withheld_reason, refusals_in_words
from .report import ReportWithheld, report_prepare
from .review import (ACTIONS, OTHER, REASONS, REDACT, RELEASE, WITHHOLD, ReviewItem, field_leaves, review_archive_build, review_decisions_checked,
                     review_items, review_withheld)
from .retention import RETENTION_REASONS
from .staging import Staged, request_period, stage_discard, stage_gather
from .storage import storage_delete, storage_delete_tree, storage_save_bytes

__all__ = [
    "ACTIONS",
    "OTHER",
    "REASONS",
    "REDACT",
    "RELEASE",
    "WITHHOLD",
    "Archive",
    "ExportPart",
    "RETENTION_REASONS",
    "ReportWithheld",
    "ReviewItem",
    "Staged",
    "archive_build",
    "archive_encrypted",
    "child_withheld_reason",
    "default_storage",
    "download_links",
    "download_url",
    "download_urls",
    "export_for_download",
    "export_part_for_download",
    "export_parts",
    "export_parts_as_json",
    "export_paths",
    "field_leaves",
    "receipt_as_dict",
    "receipt_in_words",
    "receipt_merge",
    "referral_as_dict",
    "referral_in_words",
    "refusals_in_words",
    "report_prepare",
    "request_period",
    "review_archive_build",
    "review_decisions_checked",
    "review_items",
    "review_withheld",
    "stage_discard",
    "stage_gather",
    "storage_delete",
    "storage_delete_tree",
    "storage_save_bytes",
]

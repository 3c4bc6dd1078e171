"""The data categories (TAXONOMY.md), loaded from the operator-editable data file.

Ids are contract; the wording beside them is the product's own and may be replaced by the
operator (DSAR_TAXONOMY_FILE). A dotted child such as `content.photos` rolls up to its parent.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SOURCE_TYPES = ("provided", "observed", "inferred", "third_party")
LEGAL_BASES = ("consent", "legitimate_interests", "contract", "legal_obligation")


@functools.cache
def taxonomy() -> dict[str, Any]:
    """The parsed data file: groups, legal_bases, source_types, source_kinds, categories.
    ImproperlyConfigured names a category's `sensitive` that is not true or false."""
    path = Path(getattr(settings, "DSAR_TAXONOMY_FILE", Path(__file__).parent.parent / "dsar" / "taxonomy.yaml"))
    with path.open() as handle:
        words = yaml.safe_load(handle)
    if wrong := [category for category, info in words["categories"].items() if not isinstance(info.get("sensitive", False), bool)]:
        raise ImproperlyConfigured("\n".join(f"{path}: categories.{category}.sensitive: must be true or false" for category in wrong))
    return words


def category_ids() -> list[str]:
    """Every category id, in the taxonomy's order."""
    return list(taxonomy()["categories"])


def source_kinds() -> list[str]:
    return list(taxonomy()["source_kinds"])


def category_root(category: str) -> str:
    """The listed category a dotted child rolls up to (`content.photos` -> `content`)."""
    known = taxonomy()["categories"]
    while category not in known and "." in category:
        category = category.rsplit(".", 1)[0]
    return category


def category_known(category: str) -> bool:
    return category_root(category) in taxonomy()["categories"]


def category_info(category: str) -> dict[str, Any]:
    return taxonomy()["categories"][category_root(category)]


def category_label(category: str) -> str:
    """The category's label, or its id when the taxonomy no longer lists it."""
    return category_info(category)["label"] if category_known(category) else category


def category_sensitive(category: str) -> bool:
    """Whether the category can show where a person is, what they look like or sound like: a
    child's such data goes only to someone whose authority a reviewer confirmed."""
    return category_known(category) and category_info(category).get("sensitive", False)

"""The data categories (TAXONOMY.md), loaded from the operator-editable data file.

Ids are contract; the wording beside them is the product's own and may be replaced by the
operator (DSAR_TAXONOMY_FILE). A dotted child such as `content.photos` rolls up to its parent.
A category may also give its retention as a number (`retention_days`), checked when the file is read.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation

SOURCE_TYPES = ("provided", "observed", "inferred", "third_party")
LEGAL_BASES = ("consent", "legitimate_interests", "contract", "legal_obligation")


class TaxonomyError(ImproperlyConfigured, ValueError):
    """The taxonomy file is wrong; the message names the file and the key."""


# The keys whose values are wording people read, translated by the catalogues (dsar/locale, which
# `make messages` fills from this file too); every other value is an id or a number.
WORDING = frozenset({"label", "description", "purposes", "retention", "recipients", "logic", "effects"})


def taxonomy() -> dict[str, Any]:
    """The parsed data file: groups, legal_bases, source_types, source_kinds, categories; its
    wording in the active language."""
    return taxonomy_in(translation.get_language())


@functools.cache
def taxonomy_in(language: str | None) -> dict[str, Any]:
    """The data file with its wording in `language`: a sentence the catalogue does not have (an
    operator's own wording) stays as the file gives it."""
    loaded = taxonomy_load(Path(getattr(settings, "DSAR_TAXONOMY_FILE", Path(__file__).parent.parent / "dsar" / "taxonomy.yaml")))
    if language is None:
        return loaded
    with translation.override(language):
        return _translated(loaded)


def _translated(node: Any, key: str | None = None) -> Any:
    if isinstance(node, dict):
        return {child_key: _translated(child, child_key) for child_key, child in node.items()}
    if isinstance(node, list):
        return [_translated(item, key) for item in node]
    return translation.gettext(node) if key in WORDING and isinstance(node, str) and node else node


def taxonomy_load(path: Path) -> dict[str, Any]:
    """Read a taxonomy file. TaxonomyError when a category's `retention_days` is not a whole number
    of days above zero (the retention checks of every export would rest on it), or its `sensitive`
    is not true or false."""
    with path.open() as handle:
        loaded = yaml.safe_load(handle)
    for category, info in loaded["categories"].items():
        days = info.get("retention_days")
        # YAML reads `yes` as a boolean, which Python counts as an int.
        if "retention_days" in info and (type(days) is not int or days < 1):
            raise TaxonomyError(f"{path}: categories.{category}.retention_days: must be a whole number of days above 0, not {days!r}")
    if wrong := [category for category, info in loaded["categories"].items() if not isinstance(info.get("sensitive", False), bool)]:
        raise TaxonomyError("\n".join(f"{path}: categories.{category}.sensitive: must be true or false" for category in wrong))
    return loaded


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


def category_retention_days(category: str) -> int | None:
    """How many days after it was collected a record of the category should be gone, as its
    retention promises; None when the promise names no fixed age ("while your account is open")."""
    return category_info(category).get("retention_days")


def category_sensitive(category: str) -> bool:
    """Whether the category can show where a person is, what they look like or sound like: a
    child's such data goes only to someone whose authority a reviewer confirmed."""
    return category_known(category) and category_info(category).get("sensitive", False)

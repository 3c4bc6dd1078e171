"""`python -m benchmarks.scan_accuracy`: how well `systems scan` places columns, on published schemas
it was not written against, scored against our labels.

The schemas are tests/connectors/schemas/ (Pagila and Chinook; each file names its source and
licence), filled with rows made up there; the labels are LABELS in tests/connectors/test_scan.py.
Each schema is loaded into a fresh database beside the product's on PostgreSQL (estate.stores; the
embedded server unless DATABASE_URL names one), and Chinook into a SQLite file as well, then scanned
as `manage.py systems scan` does.

A proposal is right when the column's label is the category it proposes (or "secret" for a column
under `secrets:`). Precision: right proposals over proposals; recall: right proposals over labels.
The detection figures ask only whether a personal column was proposed at all, whatever its
category; `placed_recall` counts only the labels of tables the file holds, apart from those the
file format cannot reach (a table the subject's row points at, one without a single-column key).
Overall figures add up the PostgreSQL runs. Figures go to stdout as JSON lines; the columns
proposed wrongly and those missed go to stderr. The measured figures are in benchmarks/README.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import yaml

from .harness import figure, note

BENCH = "scan_accuracy"


def accuracy(proposal: str, labels: dict[str, str]) -> dict[str, float]:
    """Precision and recall of a proposed system file's columns against `labels` ("table.column" ->
    category id, or "secret")."""
    proposed = _proposed(proposal)
    right = sum(1 for key, category in proposed.items() if labels.get(key) == category)
    found = sum(1 for key in proposed if key in labels)
    tables = {table["name"] for table in yaml.safe_load(proposal)["tables"]}
    placed = [key for key in labels if key.split(".")[0] in tables]
    placed_right = sum(1 for key in placed if proposed.get(key) == labels[key])
    return {"proposed": len(proposed), "labelled": len(labels), "right": right, "precision": _ratio(right, len(proposed)),
            "recall": _ratio(right, len(labels)), "found": found, "detection_precision": _ratio(found, len(proposed)),
            "detection_recall": _ratio(found, len(labels)), "placed": len(placed), "placed_right": placed_right,
            "placed_recall": _ratio(placed_right, len(placed))}


def _proposed(proposal: str) -> dict[str, str]:
    """"table.column" -> the category proposed for it, or "secret"."""
    proposed = {}
    for table in yaml.safe_load(proposal)["tables"]:
        for column, value in (table.get("columns") or {}).items():
            proposed[f"{table['name']}.{column}"] = value if isinstance(value, str) else value["category"]
        for secret in (table.get("secrets") or {}).values():
            proposed[f"{table['name']}.{secret['column']}"] = "secret"
    return proposed


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _scanned(name: str, url: str) -> str:
    """The proposal for published schema `name`, loaded into the empty database at `url`."""
    import sqlalchemy as sa

    from connectors.scan import database_scan
    from tests.connectors.schemas import SCHEMAS, schema_load

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        schema_load(conn, SCHEMAS[name])
    engine.dispose()
    return database_scan(url, name=name)


def _report(label: str, proposal: str, labels: dict[str, str]) -> dict[str, float]:
    scores = accuracy(proposal, labels)
    for key in ("precision", "recall", "detection_precision", "detection_recall", "placed_recall"):
        figure(BENCH, f"{label}.{key}", scores[key], "ratio", direction="min")
    proposed = _proposed(proposal)
    wrong = sorted(f"{key} ({category}, labelled {labels.get(key, 'not personal')})" for key, category in proposed.items()
                   if labels.get(key) != category)
    missed = sorted(f"{key} ({category})" for key, category in labels.items() if key not in proposed)
    note(f"{label}: {scores['right']} right of {scores['proposed']} proposed and {scores['labelled']} labelled")
    note(f"{label}: proposed wrongly: {', '.join(wrong) or 'none'}")
    note(f"{label}: missed: {', '.join(missed) or 'none'}")
    return scores


def run() -> None:
    """Scan each published schema and print the figures."""
    from estate.stores import estate_database_drop, estate_database_ensure, estate_database_url
    from tests.connectors.schemas import SCHEMAS
    from tests.connectors.test_scan import LABELS

    totals = {"proposed": 0, "labelled": 0, "right": 0, "found": 0, "placed": 0, "placed_right": 0}
    for name, schema in SCHEMAS.items():
        system = f"scan_accuracy_{name}"
        estate_database_drop(system)
        estate_database_ensure(system)
        try:
            scores = _report(name, _scanned(name, estate_database_url(system)), LABELS[name])
        finally:
            estate_database_drop(system)
        for key in totals:
            totals[key] += scores[key]
        if "sqlite" in schema.dialects:
            with tempfile.TemporaryDirectory() as directory:
                _report(f"{name}.sqlite", _scanned(name, f"sqlite:///{Path(directory) / name}.sqlite3"), LABELS[name])
    figure(BENCH, "overall.precision", _ratio(totals["right"], totals["proposed"]), "ratio", direction="min")
    figure(BENCH, "overall.recall", _ratio(totals["right"], totals["labelled"]), "ratio", direction="min")
    figure(BENCH, "overall.detection_precision", _ratio(totals["found"], totals["proposed"]), "ratio", direction="min")
    figure(BENCH, "overall.detection_recall", _ratio(totals["found"], totals["labelled"]), "ratio", direction="min")
    figure(BENCH, "overall.placed_recall", _ratio(totals["placed_right"], totals["placed"]), "ratio", direction="min")


def main() -> int:
    from devstack import Services

    with Services(mode="bench"):
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings_systems")
        import django

        django.setup()
        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

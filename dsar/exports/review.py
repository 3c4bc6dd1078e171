"""Other people's data in an access export (GDPR Art. 15(4)): what staff review before release, and
the archive written again as they decided.

Connectors flag the records and files that may be other people's data too (a contact, another
customer's comment on a shared ticket, a CCTV recording); the staging lists them (`OthersItem`), and
an export holding any waits for staff. For each, a reviewer releases it as it is, withholds it, or
redacts named fields of a record, with the reason for anything withheld or redacted. The archive is
then written again from the staged work: without what was withheld, with REDACTED in place of each
redacted field, and with a report section saying per category how many items were left out or
partly hidden, and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson


from ..errors import InvalidInput
from ..models import ConnectorTask, Request
from .archive import Archive, archive_write
from .report import WITHHELD_OTHER, WITHHELD_REASONS, ReportWithheld
from .staging import Staged, json_stream, stage_edited

REDACTED = "[redacted]"  # what a redacted field shows in the archive
RELEASE, WITHHOLD, REDACT = "release", "withhold", "redact"
ACTIONS = (RELEASE, WITHHOLD, REDACT)
# Why an item is withheld or redacted, in the words the person reads; OTHER: the reviewer's own words.
REASONS = WITHHELD_REASONS
OTHER = WITHHELD_OTHER


@dataclass(frozen=True)
class ReviewItem:
    """A staged record that may be other people's data, as the reviewer sees it: `id` names it in a
    decision; it is the `index`th record of its category that its connector staged; `file` is the
    archive member it stands for, if it is a file's record; `paths` are the fields a decision may
    redact (nested ones dotted, a list's elements by position)."""

    id: str
    connector: str
    category: str
    index: int
    system: str
    fields: dict[str, Any]
    file: str | None

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in field_leaves(self.fields)]


@dataclass(frozen=True)
class Decision:
    """What a reviewer decided for one item: `action` is one of ACTIONS; `fields` the paths a redaction
    hides; `reason` a key of REASONS or OTHER with `reason_text`, for what is withheld or redacted."""

    item: str
    action: str
    fields: tuple[str, ...] = ()
    reason: str = ""
    reason_text: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The decision as the export's `review` keeps it."""
        return {"item": self.item, "action": self.action, "fields": list(self.fields), "reason": self.reason,
                "reason_text": self.reason_text}


def field_leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of each leaf of a record's fields: a nested mapping's keys dotted, a list's
    elements by their position (`messages.1.body`)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from field_leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from field_leaves(item, f"{path}.{index}")
    elif path:
        yield path, value


def _redacted(value: Any, paths: frozenset[str], path: str = "") -> Any:
    """The fields with the leaves at `paths` replaced by REDACTED."""
    if path in paths:
        return REDACTED
    if isinstance(value, dict) and value:
        return {key: _redacted(item, paths, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
    if isinstance(value, list) and value:
        return [_redacted(item, paths, f"{path}.{index}") for index, item in enumerate(value)]
    return value


def review_items(tasks: Iterable[ConnectorTask]) -> list[ReviewItem]:
    """The records and files a request's tasks staged that may be other people's data, connector
    after connector, each in its category's order. Only the categories holding some are read."""
    items = []
    for task in tasks:
        staged = Staged.from_json(task.output) if task.output else None
        if staged is None or not staged.others:
            continue
        flagged: dict[str, dict[int, str | None]] = {}
        for other in staged.others_items():
            flagged.setdefault(other.category, {})[other.index] = other.file
        for category, at in flagged.items():
            for index, line in enumerate(staged.lines(json_stream(category))):
                if index in at:
                    record = orjson.loads(line)
                    items.append(ReviewItem(f"{task.connector}:{category}:{index}", task.connector, category, index, record["system"],
                                            record["fields"], at[index]))
    return items


def review_decisions_checked(items: Sequence[ReviewItem], decisions: Iterable[Mapping[str, Any]]) -> list[Decision]:
    """One decision for each item, checked: InvalidInput names the first that is wrong (an unknown or
    undecided item, an item decided twice, an unknown action or reason, a redaction of no field or of
    a field the record lacks, or of a file, a withheld or redacted item without its reason)."""
    known = {item.id: item for item in items}
    checked: dict[str, Decision] = {}
    for given in decisions:
        item = known.get(given.get("item"))
        if item is None:
            raise InvalidInput(f"No item to review is named {given.get('item')!r}.", code="unknown_item")
        if item.id in checked:
            raise InvalidInput(f"{item.id} is decided twice.", code="duplicate_decision")
        action, paths = given.get("action"), tuple(given.get("fields") or ())
        if action not in ACTIONS:
            raise InvalidInput(f"{item.id}: the action is one of {', '.join(ACTIONS)}.", code="invalid_action")
        if action == REDACT and item.file is not None:
            raise InvalidInput(f"{item.id} is a file: release it or withhold it.", code="invalid_action")
        if (action == REDACT) != bool(paths):
            raise InvalidInput(f"{item.id}: name the fields to redact, and only to redact.", code="invalid_fields")
        if unknown := sorted(set(paths) - set(item.paths)):
            raise InvalidInput(f"{item.id} has no field {unknown[0]!r}.", code="unknown_field")
        reason, text = given.get("reason") or "", (given.get("reason_text") or "").strip()
        if action == RELEASE:
            reason = text = ""
        elif not reason or (reason == OTHER and not text):
            raise InvalidInput(f"{item.id}: say why it is {'withheld' if action == WITHHOLD else 'redacted'}: the person is told.",
                               code="reason_required")
        elif reason not in (*REASONS, OTHER):
            raise InvalidInput(f"{item.id}: the reason is one of {', '.join((*REASONS, OTHER))}.", code="invalid_reason")
        checked[item.id] = Decision(item.id, action, tuple(dict.fromkeys(paths)), reason, text if reason == OTHER else "")
    if undecided := [item.id for item in items if item.id not in checked]:
        raise InvalidInput(f"Decide for every item: {undecided[0]} has no decision.", code="decision_missing")
    return [checked[item.id] for item in items]


@dataclass
class _Withheld:
    withheld: int = 0
    redacted: int = 0
    reasons: list[tuple[str, str]] = field(default_factory=list)


def review_withheld(items: Sequence[ReviewItem], decisions: Sequence[Decision]) -> list[ReportWithheld]:
    """Per category, in the items' order, how many items the decisions withheld and redacted, and why."""
    categories = {item.id: item.category for item in items}
    found: dict[str, _Withheld] = {}
    for decision in decisions:
        if decision.action == RELEASE:
            continue
        counted = found.setdefault(categories[decision.item], _Withheld())
        if decision.action == WITHHOLD:
            counted.withheld += 1
        else:
            counted.redacted += 1
        reason = (decision.reason, decision.reason_text if decision.reason == OTHER else "")
        if reason not in counted.reasons:
            counted.reasons.append(reason)
    return [ReportWithheld(category, c.withheld, c.redacted, c.reasons) for category, c in found.items()]


def review_archive_build(request: Request, tasks: Iterable[ConnectorTask], items: Sequence[ReviewItem],
                         decisions: Sequence[Decision]) -> Archive:
    """Write the request's export archive again from its tasks' staged work, as the decisions say:
    what they withhold left out, what they redact shown as REDACTED, and the report saying what
    was left out or hidden per category, and why. The staged work is copied where it changes,
    under a name of its own, so a copy left by a rebuild that died is never read."""
    by_item = {item.id: item for item in items}
    changes: dict[str, dict[str, dict[int, Any]]] = {}
    left_out: dict[str, set[str]] = {}
    for decision in decisions:
        if decision.action == RELEASE:
            continue
        item = by_item[decision.item]
        edited = None if decision.action == WITHHOLD else _redacted(item.fields, frozenset(decision.fields))
        changes.setdefault(item.connector, {}).setdefault(item.category, {})[item.index] = edited
        if decision.action == WITHHOLD and item.file is not None:
            left_out.setdefault(item.connector, set()).add(item.file)
    staged = {}
    for task in tasks:
        if not task.output:
            continue
        output = Staged.from_json(task.output)
        if task.connector in changes:
            output = stage_edited(output, connector=task.connector, prefix=f"work/{request.pk}/{task.connector}/review-{uuid.uuid4().hex}",
                                  changes=changes[task.connector], files_left_out=frozenset(left_out.get(task.connector, ())))
        staged[task.connector] = replace(output, others=0)
    return archive_write(request, staged, withheld=review_withheld(items, decisions))

"""Format versions: what one release leaves behind for the next to read (docs/upgrading.md).

Work outlives the code that started it. During an upgrade, rows, staged files and queued messages
written by the release before are finished by this one; while workers roll, some written by this
release may meet an older worker, or, later, some written by a newer release may meet this one. So
each kind of thing left behind says which format it is in:

- a task's staged work: `format` in its row's `output` (the staged manifest), which also versions
  the streams and the zip of files it names in the work area (dsar/exports/staging.py);
- a connector task row's result: the `result_format` column, versioning its `counts`, `receipt`
  and `identities` (written with the result, dsar/orm_bypass.py);
- a Celery message's body (the task's arguments): the `dsar_format` header (dsar/doorbell.py).
  A header, not an argument: a worker of the release before ignores a header it does not know,
  but would refuse an argument it does not take.

Each constant is the version this release writes; each `*_READS` the versions it reads. What the
release before format versions wrote carries none and is read as version 1, the format it wrote.
A version outside `*_READS` is refused with FormatUnknown before anything is claimed or changed, so
the work waits, as it was, for a worker that reads it (the sweeper rings for it again).
"""

from __future__ import annotations

STAGED = 2  # 2: `others`, and the stream listing what may be other people's data (dsar/exports/review.py)
STAGED_READS = frozenset({1, 2})

TASK_RESULT = 1
TASK_RESULT_READS = frozenset({1})

MESSAGE = 1
MESSAGE_READS = frozenset({1})
MESSAGE_HEADER = "dsar_format"

UNVERSIONED = 1  # the format of what the release before format versions wrote


class FormatUnknown(Exception):
    """Work in a format this release does not read (a newer release wrote it). Nothing was done:
    the work is left as it was for a worker of a release that reads it."""


def format_check(what: str, version: object, reads: frozenset[int]) -> None:
    """Refuse `version` of `what` unless this release reads it (None: unversioned, version 1)."""
    if version is None:
        version = UNVERSIONED
    if version not in reads:
        raise FormatUnknown(f"{what} is in format {version!r}, which this release does not read (it reads {sorted(reads)}): "
                            "left untouched for a worker of a newer release; upgrade the workers (docs/upgrading.md)")

"""python manage.py run_job NAME [--now ISO-TIME] [--limit N]: run one scheduled job once."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from dsar.jobs import JOBS, job_run


class Command(BaseCommand):
    help = "Run one scheduled job now, as beat would: " + ", ".join(JOBS)

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(JOBS))
        parser.add_argument("--now", help="pretend it is this time (ISO 8601, with a time zone)")
        parser.add_argument("--limit", type=int, help="most rows to handle in this run")

    def handle(self, *args, name: str, now: str | None, limit: int | None, **options):
        when = None
        if now:
            try:
                when = dt.datetime.fromisoformat(now)
            except ValueError:
                raise CommandError(f"--now {now!r} is not an ISO 8601 time") from None
            if when.tzinfo is None:
                raise CommandError("--now needs a time zone, e.g. 2026-12-01T09:00:00+00:00")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        self.stdout.write(job_run(name, now=when, limit=limit))

"""python manage.py metrics --year Y [--json]: the yearly figures CCPA regulations §7102 ask for, of
the requests received in calendar year Y (UTC)."""

import json

from django.core.management.base import BaseCommand, CommandError

from dsar.selectors import metrics_years, yearly_metrics_get, yearly_metrics_table


class Command(BaseCommand):
    help = ("Print, per request type, the requests received in a calendar year (UTC): complied with in whole or in part, denied, "
            "closed without a denial, still open, and the median and mean days to respond (CCPA regulations §7102).")

    def add_arguments(self, parser):
        parser.add_argument("--year", type=int, required=True, help="the calendar year the requests were received in")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    def handle(self, *args, year: int, **options):
        years = metrics_years()
        if year not in years:
            raise CommandError(f"--year must be a year from {years[0]} to {years[-1]}, not {year}")
        metrics = yearly_metrics_get(year=year)
        if options["json"]:
            self.stdout.write(json.dumps(metrics))
            return
        self.stdout.write(f"Requests received in {year} (UTC), CCPA regulations §7102")
        rows = yearly_metrics_table(metrics)
        width = max(len(row[0]) for row in rows)
        for label, *values in rows:
            self.stdout.write(f"{label:<{width}}" + "".join(f"{value:>10}" for value in values))

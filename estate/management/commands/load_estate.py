"""python manage.py load_estate FILE.json: add subjects to the demo estate (contract §7)."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from estate.loader import EstateError, estate_load, estate_parse

DEMO = Path(__file__).resolve().parents[2] / "demo.json"


class Command(BaseCommand):
    help = "Validate an estate file whole, then write its subjects into the estate's systems."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="the estate JSON file (default: the demo estate)")

    def handle(self, *args, file: str | None = None, **options):
        if not settings.DSAR_DEMO_ESTATE:
            if file:
                raise CommandError("DSAR_SYSTEMS names the deployment's own systems: the demo estate is not one of them")
            self.stdout.write("DSAR_SYSTEMS is set: no demo data loaded")
            return
        path = Path(file) if file else DEMO
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        except json.JSONDecodeError as error:
            raise CommandError(f"{path}: not valid JSON: {error}") from None
        try:
            estate = estate_parse(data)
        except EstateError as error:
            raise CommandError(f"{path}: nothing loaded: {error}") from None
        count = estate_load(estate)
        self.stdout.write(f"loaded {count} subjects from {path.name}")

"""python manage.py systems check|preview|scan|import-fides: the deployment's systems, without the
product running (contract §10)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.fides import FidesError, fides_dataset_convert
from connectors.scan import ScanError, database_scan
from connectors.base import ConnectorError, Identity
from connectors.registry import connector_get, systems
from dsar.system_checks import system_check_recorded, system_check_run


class Command(BaseCommand):
    help = "Work with the deployment's systems (DSAR_SYSTEMS) without the product running."
    # These commands reach only the systems: Django's own checks would want the product's database.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        check = actions.add_parser("check", help="Connect to each system and fit its file against it; exit 1 on any problem.")
        check.add_argument("names", nargs="*", metavar="NAME", help="the systems to check (default: every one)")
        preview = actions.add_parser("preview", help="Show what a request about EMAIL would gather or erase, changing nothing.")
        preview.add_argument("email", metavar="EMAIL", help="the subject's email")
        preview.add_argument("--type", choices=["access", "deletion"], default="access", help="the request's type (default: access)")
        fides = actions.add_parser("import-fides", help="Print a system file converted from a Fides (fideslang) dataset file.")
        fides.add_argument("file", type=Path, metavar="FILE", help="the Fides dataset file (YAML)")
        fides.add_argument("--name", required=True, help="the system's name: lower case letters, digits and underscores")
        fides.add_argument("--url", required=True, help="the system's database URL; written in the file only when it holds no password")
        fides.add_argument("--dataset", metavar="KEY", help="the fides_key of the dataset to convert, when the file holds several")
        scan = actions.add_parser("scan", help="Print a proposed system file for the database at URL; sampled values are never printed.")
        scan.add_argument("url", metavar="URL", help="the database's SQLAlchemy URL (never written to the file: it may hold a password)")
        scan.add_argument("--name", required=True, help="the system's name: lower case letters, digits and underscores")
        scan.add_argument("--identity", metavar="TABLE.COLUMN", help="the subject's table and email column (default: found by name and content)")
        scan.add_argument("--schema", help="the schema to scan (default: the connection's)")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, action.replace("-", "_"))(**options)

    def check(self, *, names: list[str], **options) -> None:
        configured = systems()
        unknown = [name for name in names if name not in configured]
        if unknown:
            raise CommandError(f"no system named {', '.join(unknown)}; the systems are {', '.join(configured)}")
        problems = 0
        for name in names or configured:
            findings = system_check_run(name)
            for finding in findings:
                line = f"{name}: {finding.where}: {finding.what}" if finding.problem else f"{name}: {finding.where}: advice: {finding.what}"
                self.stdout.write(line)
            problems += sum(f.problem for f in findings)
            system_check_recorded(name, findings)
            if not any(f.problem for f in findings):
                self.stdout.write(f"{name}: fits its file")
        if problems:
            raise SystemExit(1)

    def preview(self, *, email: str, type: str, **options) -> None:
        identity = Identity(email=email.strip().lower())
        for name in systems():
            connector = connector_get(name)
            try:
                lines = connector.gather_preview(identity) if type == "access" else connector.erase_preview(identity).steps
            except ConnectorError as error:
                self.stdout.write(f"{name}: cannot say: {str(error).removeprefix(f'{name}: ')}")
                continue
            for line in lines:
                self.stdout.write(str(line))
            if not lines:
                self.stdout.write(f"{name}: nothing")

    def import_fides(self, *, file: Path, name: str, url: str, dataset: str | None, **options) -> None:
        try:
            self.stdout.write(fides_dataset_convert(file, name=name, url=url, dataset=dataset), ending="")
        except FidesError as error:
            raise CommandError(str(error)) from None

    def scan(self, *, url: str, name: str, identity: str | None, schema: str | None, **options) -> None:
        try:
            self.stdout.write(database_scan(url, name=name, identity=identity, schema=schema), ending="")
        except ScanError as error:
            raise CommandError(str(error)) from None

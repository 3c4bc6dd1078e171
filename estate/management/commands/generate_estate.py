"""python manage.py generate_estate --subjects N --seed S: a large, deterministic demo estate."""

from itertools import islice

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from estate.generate import generate_subjects
from estate.loader import EstateError, estate_load, estate_parse

BATCH = 200


class Command(BaseCommand):
    help = "Generate N deterministic subjects and load them into the estate, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--subjects", type=int, required=True)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--interactions", type=int, default=40, help="interaction rows per subject")
        parser.add_argument("--files", type=int, default=5, help="content files per subject")
        parser.add_argument("--file-bytes", type=int, default=2048, help="bytes per content file")

    def handle(self, *args, subjects: int, seed: int, interactions: int, files: int, file_bytes: int, **options):
        if not settings.DSAR_DEMO_ESTATE:
            raise CommandError("DSAR_SYSTEMS names the deployment's own systems: the demo estate is not one of them")
        if subjects < 1:
            raise CommandError("--subjects must be at least 1")
        stream = generate_subjects(count=subjects, seed=seed, interactions=interactions, files=files, file_bytes=file_bytes)
        loaded = 0
        while batch := list(islice(stream, BATCH)):
            try:
                loaded += estate_load(estate_parse({"subjects": batch}))
            except EstateError as error:
                raise CommandError(str(error)) from None
            self.stderr.write(f"loaded {loaded}/{subjects}")
        self.stdout.write(f"generated {loaded} subjects with seed {seed}")

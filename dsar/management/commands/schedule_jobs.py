"""python manage.py schedule_jobs: store the default schedule of every job for beat (idempotent)."""

from django.core.management.base import BaseCommand

from dsar.jobs import schedule_ensure


class Command(BaseCommand):
    help = "Create the database schedule beat reads, one row per job; rows admins changed are kept."

    def handle(self, *args, **options):
        schedule_ensure()
        self.stdout.write("job schedule in place")

"""The request workflow: requests, identity verification, review, deadlines, audit and exports."""

from .celery import app as celery_app

__all__ = ("celery_app",)

"""The product's settings for the cluster batch: `make chaos`'s recovery timings, except that a task
is taken for one whose message was lost only after sitting queued 30 s rather than 6. With two of
three worker hosts lost for a while the queue runs longer than that, and a task rung for again three
times fails its request; RabbitMQ keeps its messages across a restart, so few are ever lost here."""

from .chaos_settings import *  # noqa: F403

DSAR_SWEEP_QUEUED_MINUTES = 0.5

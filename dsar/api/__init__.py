"""The JSON API: the subject's calls and the staff's calls."""

from . import schema  # noqa: F401  (registers the OpenAPI description of staff tokens)

from django.apps import AppConfig


class EstateConfig(AppConfig):
    """The demo estate: a small company's systems, stood up locally. The product never imports it."""

    name = "estate"
    verbose_name = "Demo estate"

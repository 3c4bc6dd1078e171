from django.apps import AppConfig


class DsarConfig(AppConfig):
    name = "dsar"
    verbose_name = "Data subject requests"

    def ready(self) -> None:
        from django.conf import settings

        from connectors.registry import systems

        if settings.DSAR_SYSTEMS_AT_START_UP:  # a bad system file stops start-up here, before any request runs
            systems()

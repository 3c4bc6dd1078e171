from django.apps import AppConfig


class DsarConfig(AppConfig):
    name = "dsar"
    verbose_name = "Data subject requests"

    def ready(self) -> None:
        # A bad system file stops start-up here, before any request runs.
        from connectors.registry import systems

        systems()

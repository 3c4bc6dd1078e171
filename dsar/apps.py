from django.apps import AppConfig
from django.db.backends.signals import connection_created

# A worker host killed in the middle of a transaction leaves its session's row locks held until the
# database server notices the host is gone, which Linux's defaults make a quarter of an hour, and
# the request's retry waits on them. Each session of the product's asks the server to give up on a
# silent client within about 25 s: when idle, after three unanswered keepalive probes 5 s apart
# from 10 s of silence; with data sent and never acknowledged, after 25 s (tcp_user_timeout). A
# session over a Unix socket ignores them, as it has no such failure. Set per session rather than
# as startup options, which connection poolers refuse.
SERVER_SESSION_SETUP = ("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; "
                        "SET tcp_user_timeout = 25000")


def database_session_setup(sender, connection, **kwargs) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(SERVER_SESSION_SETUP)


class DsarConfig(AppConfig):
    name = "dsar"
    verbose_name = "Data subject requests"

    def ready(self) -> None:
        from django.conf import settings

        from connectors.registry import systems

        connection_created.connect(database_session_setup, dispatch_uid="dsar.database_session_setup")
        if settings.DSAR_SYSTEMS_AT_START_UP:  # a bad system file stops start-up here, before any request runs
            systems()

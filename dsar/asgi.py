"""The web server's entry point: the WSGI application (dsar/wsgi.py) served from an event loop.

gunicorn's asgi worker reads each request's line and headers in its event loop, so a client that
sends them slowly holds a socket, not a thread; a2wsgi then runs the application, which is plain
synchronous Django, on a pool of threads of its own. Under gunicorn's threaded worker a connection
took a thread from its first byte, and six clients dribbling headers held every thread of the web
tier (decision 0007).
"""

from a2wsgi import WSGIMiddleware

from dsar.wsgi import application as wsgi_application


def application_make(threads: int) -> WSGIMiddleware:
    """The application for gunicorn (`dsar.asgi:application_make(threads=3)`), running Django
    on `threads` threads a worker process."""
    return WSGIMiddleware(wsgi_application, workers=threads)

"""Browser tests: headless Chromium (Debian's package) driven by Playwright, against the live
server, the real worker, PostgreSQL and Redis. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DSAR_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make are
# ordinary blocking calls between browser steps, which is safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config, items):
    if not Path(CHROMIUM).exists():
        raise pytest.UsageError(f"Chromium is missing at {CHROMIUM}: `make test` installs Debian's chromium package")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"],
    }


@pytest.fixture
def site(live_server, worker, settings):
    """The live server's base URL, with links in emails pointing at it."""
    settings.DSAR_PUBLIC_URL = live_server.url
    return live_server.url


@pytest.fixture
def shot():
    """Save a full-page screenshot as a test artifact: shot(page, "name")."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take

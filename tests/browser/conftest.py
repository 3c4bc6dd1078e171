"""Browser tests: headless Chromium (Debian's package) driven by Playwright, against the live
server, the real worker, PostgreSQL and Redis. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

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


# Phone widths (the narrowest a page must fit, and a common phone) and a desktop width.
AXE_WIDTHS = {"320 px": {"width": 320, "height": 720}, "390 px": {"width": 390, "height": 844},
              "1280 px": {"width": 1280, "height": 900}}
# Every WCAG 2.0, 2.1 and 2.2 level A and AA rule axe-core has; none is set aside.
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
               "resultTypes": ["violations"]}


def axe_violations_describe(violations: list[dict]) -> str:
    """One line per element axe-core found at fault: the rule, what it asks, the element."""
    return "\n".join(f"  {v['id']} ({v['help']}): {' '.join(node['target'])}  {node['html'][:160]}"
                     for v in violations for node in v["nodes"])


@pytest.fixture
def axe():
    """Run axe-core on the page as it stands at each width, check that the page does not scroll
    sideways there, and fail naming every violation: axe(page, "portal start"). The viewport is
    left at the desktop width."""
    engine = Axe()

    def check(page, name: str) -> None:
        found = []
        for width, viewport in AXE_WIDTHS.items():
            page.set_viewport_size(viewport)
            violations = engine.run(page, options=AXE_OPTIONS).response["violations"]
            if violations:
                found.append(f"{name} at {width}:\n{axe_violations_describe(violations)}")
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > viewport["width"]:
                found.append(f"{name} at {width}: the page scrolls sideways, {wide} px wide "
                             "(WCAG 1.4.10 Reflow, which axe-core cannot see)")
        assert not found, "accessibility violations:\n" + "\n".join(found)

    return check

"""Fixtures of the browser tests: the real opsd binary on a free loopback port with a
throw-away data directory, headless Debian Chromium driven by Playwright, and a small
API client (the admin key) to make the writes the console must show."""

import os
import pathlib
import sys

import pytest
from playwright.sync_api import sync_playwright

# The shared harness (tests/opsd_harness.py): the process and the REST helper.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from opsd_harness import serve  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
SHOTS = REPO / "target" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def opsd():
    with serve() as server:
        yield server


@pytest.fixture(scope="session")
def chromium():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: scripts/test installs it"
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


class Tab:
    """A page in a fresh browser context (its own cookies), recording every request it
    makes and every script error, so tests can assert on both."""

    def __init__(self, context, opsd):
        self.context = context
        self.opsd = opsd
        self.page = context.new_page()
        self.page.set_default_timeout(10_000)
        self.requests = []
        self.errors = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def sign_in(self, key):
        self.page.goto(self.opsd.base + "/console")
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("#whoami:not(:empty)")

    def goto(self, hash_):
        self.page.evaluate("h => { window.location.hash = h; }", hash_)

    def shot(self, name, full_page=True):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def tab(chromium, opsd):
    context = chromium.new_context(viewport={"width": 1360, "height": 900})
    t = Tab(context, opsd)
    yield t
    context.close()
    assert not t.errors, f"script errors in the page: {t.errors}"

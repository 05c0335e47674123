"""Fixtures of the browser tests: the real opsd binary on a free loopback port with a
throw-away data directory, headless Debian Chromium driven by Playwright, and a small
API client (the admin key) to make the writes the console must show."""

import json
import os
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

REPO = pathlib.Path(__file__).resolve().parents[2]
SHOTS = REPO / "target" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


class Opsd:
    """The server under test and an API client holding a key."""

    def __init__(self, base, key, data_dir):
        self.base = base
        self.key = key
        self.data_dir = data_dir

    def with_key(self, key):
        return Opsd(self.base, key, self.data_dir)

    def request(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        req.add_header("authorization", f"Bearer {self.key}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def create(self, **fields):
        status, op = self.request("POST", "/v1/operations", fields)
        assert status == 201, op
        return op

    def patch(self, op_id, **fields):
        status, op = self.request("PATCH", f"/v1/operations/{op_id}", fields)
        assert status == 200, op
        return op

    def mint(self, role, projects, name="console-test"):
        status, key = self.request(
            "POST", "/v1/api_keys", {"name": name, "role": role, "projects": projects}
        )
        assert status == 201, key
        return key


@pytest.fixture(scope="session")
def opsd():
    binary = os.environ.get("OPSD_BIN", str(REPO / "target" / "debug" / "opsd"))
    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            env={**os.environ, "OPSD_LOG": "warn"},
            text=True,
        )
        try:
            prefix = "opsd listening on "
            line = ""
            while not line.startswith(prefix):
                line = proc.stdout.readline()
                assert line, "opsd exited before listening"
            key = pathlib.Path(data_dir, "admin.key").read_text().strip()
            yield Opsd(line.strip()[len(prefix):], key, data_dir)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


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

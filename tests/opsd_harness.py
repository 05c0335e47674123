"""The real opsd binary for the Python suites (Google's clients, the browser tests):
started on a free port with a throw-away data directory, and a REST helper that plays
the producer with its admin key. Each suite's conftest.py imports it."""

import contextlib
import json
import os
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]


class Opsd:
    """The server under test and an API client holding a key."""

    def __init__(self, base, key, data_dir):
        self.base = base
        self.address = base.removeprefix("http://")
        self.key = key
        self.data_dir = data_dir

    def with_key(self, key):
        return type(self)(self.base, key, self.data_dir)

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

    def mint(self, role, projects, name="python-test"):
        """A new key (the whole answer, `key_secret` included)."""
        status, key = self.request(
            "POST", "/v1/api_keys", {"name": name, "role": role, "projects": projects}
        )
        assert status == 201, key
        return key


@contextlib.contextmanager
def serve(cls=Opsd):
    """Runs `opsd serve` (OPSD_BIN, or the debug build) until the block ends."""
    binary = os.environ.get("OPSD_BIN", str(REPO / "target" / "debug" / "opsd"))
    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            env={**os.environ, "OPSD_LOG": "warn"},
            text=True,
        )
        try:
            # The first start prints the new admin key, then the listening line.
            prefix = "opsd listening on "
            line = ""
            while not line.startswith(prefix):
                line = proc.stdout.readline()
                assert line, "opsd exited before listening"
            key = pathlib.Path(data_dir, "admin.key").read_text().strip()
            yield cls(line.strip()[len(prefix):], key, data_dir)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

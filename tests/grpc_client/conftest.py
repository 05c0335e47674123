"""Starts the real opsd binary on a free port with a throw-away data directory, and
gives the tests its address, its admin key and a REST helper to play the producer."""

import json
import os
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


class Opsd:
    def __init__(self, base, key):
        self.base = base
        self.address = base.removeprefix("http://")
        self.key = key

    def request(self, method, path, body=None, key=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        req.add_header("authorization", f"Bearer {key or self.key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def create(self, **fields):
        status, op = self.request("POST", "/v1/operations", fields)
        assert status == 201, op
        return op

    def patch(self, op_id, **fields):
        status, op = self.request("PATCH", f"/v1/operations/{op_id}", fields)
        assert status == 200, op
        return op

    def mint_key(self, role, projects):
        status, key = self.request(
            "POST", "/v1/api_keys", {"name": f"grpc-{role}", "role": role, "projects": projects}
        )
        assert status == 201, key
        return key["key_secret"]


@pytest.fixture(scope="module")
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
            yield Opsd(line.strip()[len(prefix):], key)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

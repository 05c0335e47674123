"""Starts the real opsd binary on a free port with a throw-away data directory, and
gives the tests its address, its admin key and a REST helper to play the producer."""

import pathlib
import sys

import pytest

# The shared harness (tests/opsd_harness.py): the process and the REST helper.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from opsd_harness import serve  # noqa: E402


@pytest.fixture(scope="module")
def opsd():
    with serve() as server:
        yield server

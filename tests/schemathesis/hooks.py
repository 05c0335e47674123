"""Schemathesis hooks for opsd (loaded through SCHEMATHESIS_HOOKS by scripts/schemathesis).

Waits: a valid `timeout` may be up to 120 s (and the default is 60 s), so one generated
wait on a pending operation would hold a worker for minutes. A valid timeout longer than
one second, or none, is replaced by `1s`; invalid ones are sent as generated, so the
grammar is still tested both ways. This changes what is waited for, never what is checked.
"""

import re

import schemathesis

# The pattern the document publishes for `timeout` (opsd_domain::duration).
TIMEOUT = re.compile(
    r"^(([0-9]|[1-9][0-9]|1[01][0-9]|120)s|[0-2]m|1m([0-9]|[1-5][0-9])s|"
    r"([0-9]|[1-9][0-9]{1,4}|1[01][0-9]{4}|120000)ms)$"
)
SHORT = {"0s", "1s", "0m"}


def _short(value):
    if not isinstance(value, str) or not TIMEOUT.match(value):
        return value  # invalid: the server must refuse it, send it as is
    if value in SHORT or value.endswith("ms") and int(value[:-2]) <= 1000:
        return value
    return "1s"


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not case.operation.path.endswith("/wait"):
        return
    query = dict(case.query or {})
    query["timeout"] = _short(query.get("timeout", "1s"))
    case.query = query

"""Runs the Schemathesis command line (as `schemathesis …`), with one workaround.

CPython 3.11 before 3.11.8 can raise "SystemError: AST constructor recursion depth
mismatch" from `ast.parse` when it runs deep inside a recursion (CPython issue
gh-106905). Hypothesis parses source files lazily to *describe* lambdas (for reprs and
messages only), and Schemathesis sometimes asks for such a description deep in its
coverage phase, so a run failed at random with a "Runtime Error" that says nothing about
opsd. The description falls back to Hypothesis's own "<unknown>" form instead; what is
generated and checked is unchanged.
"""

import sys

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _describe_or_unknown(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_or_unknown

from schemathesis.cli import schemathesis  # noqa: E402  (after the workaround)

if __name__ == "__main__":
    sys.argv[0] = "schemathesis"
    sys.exit(schemathesis())

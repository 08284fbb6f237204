"""Routing: the decision per document, and checking routing.yaml (done at start and reload)."""

from __future__ import annotations

from bench.common import FIXTURES, ROOT, Context, measure
from gateway.pipeline import Checks, normalise, read
from gateway.routing import loader
from gateway.submission import Submission


def rows(_ctx: Context) -> dict[str, dict]:
    table = loader.load(ROOT / "routing.yaml")
    submission = Submission(raw=(FIXTURES / "cda/crbio_glycemia.xml").read_bytes(), transport="b")
    document = read(submission, Checks())
    envelope = normalise(document, document.payload, None, submission)
    return {
        f"routing decide ({len(table.rules)} rules, CR-BIO)": measure(
            lambda: table.decide(envelope)
        ),
        "routing explain": measure(lambda: table.explain(envelope)),
        "routing.yaml load + check": measure(lambda: loader.load(ROOT / "routing.yaml")),
    }

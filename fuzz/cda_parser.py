"""Fuzz target: the hardened CDA parser and the CDA validator behind it.

Any exception is a crash: content problems must come back as findings.
"""

import sys

import atheris

with atheris.instrument_imports():
    from gateway.adapters.cda import intake
    from gateway.adapters.cda.parser import CdaLimits
    from gateway.outcome import Rejected
    from gateway.validators.cda import CdaValidator

LIMITS = CdaLimits(max_bytes=1 << 20)
VALIDATOR = CdaValidator()


def test_one_input(data: bytes) -> None:
    outcome, _doc = intake.read(data, LIMITS, VALIDATOR)
    if isinstance(outcome, Rejected) and not outcome.report.errors:
        raise AssertionError("rejected without saying why")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

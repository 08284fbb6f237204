"""Passerelle: receive, validate, sign, normalise and route health documents.

The public surface is small on purpose; everything else is reached through its module.
"""

from gateway.envelope import Envelope
from gateway.findings import Finding, Report, Severity
from gateway.outcome import Accepted, Rejected
from gateway.pipeline import ingest
from gateway.submission import Submission

__all__ = [
    "Accepted",
    "Envelope",
    "Finding",
    "Rejected",
    "Report",
    "Severity",
    "Submission",
    "ingest",
]

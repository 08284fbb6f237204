"""HL7 times read as instants, and the versionNumber of a report converted from them. Pure.

A converted report's versions are numbered from the time elapsed between specimen collection
(OBR-7) and report (OBR-22), so that the record store files a later report over an earlier
one; times are read with their precision and offset, subtracted in UTC (docs/hl7v2.md,
"Versions").
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

from gateway.findings import Finding, error

LAYER = "crbio"
LOCAL_ZONE = ZoneInfo("Europe/Paris")  # HL7 times without an offset are French local time

_DTM = re.compile(
    r"(\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?)([+-]\d{4})?"
)
_MINUTE = 12  # digits of YYYYMMDDHHMM: the least precision that orders a report's versions

_MAX_VERSION = 2**31 - 1  # an INT column in the record store


@functools.lru_cache(maxsize=1024)  # a message repeats the same few times in every OBX
def ts(value: str) -> str:
    """HL7 TS → CDA TS; date-times without an offset get the French local offset."""
    value = value.strip()
    if len(value) <= 8 or "+" in value or "-" in value[8:]:
        return value
    digits = value.split(".")[0]
    try:
        moment = datetime.strptime(digits.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return value
    offset = moment.replace(tzinfo=LOCAL_ZONE).strftime("%z")
    return digits + offset


class Moment(NamedTuple):
    """An HL7 DTM read as an instant: ``at`` in UTC, so that two moments subtract as elapsed
    time whatever their offsets (Python subtracts datetimes sharing a tzinfo as wall-clock
    time, wrong across a change of summer time); ``digits``, the date-time digits given (its
    precision); ``ambiguous``, a French local time (no offset) of the hour the clocks repeat
    when summer time ends, read as its first occurrence."""

    at: datetime
    digits: int
    ambiguous: bool = False


def dtm(value: str) -> Moment | None:
    """HL7 DTM/TS of any precision (YYYY to YYYYMMDDHHMMSS.SSSS, optional +/-ZZZZ offset) as
    a ``Moment``; no offset: French local time, read deterministically where it is not one
    instant (fold 0): in the repeated autumn hour, the first occurrence (summer time); in the
    hour skipped in spring, the offset before the change (as a clock not yet moved forward).
    None when it is not a DTM."""
    m = _DTM.fullmatch(value.strip())
    if m is None:
        return None
    digits, offset = m.group(1), m.group(2)
    whole = digits.split(".")[0]
    try:
        moment = datetime.strptime(whole + "0101000000"[len(whole) - 4 :], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    if "." in digits:
        moment += timedelta(seconds=float("0." + digits.split(".")[1]))
    if offset:
        sign = -1 if offset[0] == "-" else 1
        minutes = sign * (int(offset[1:3]) * 60 + int(offset[3:5]))
        if abs(minutes) >= 24 * 60:
            return None
        at = moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))
        return Moment(at.astimezone(UTC), len(whole))
    local = moment.replace(tzinfo=LOCAL_ZONE, fold=0)
    at = local.astimezone(UTC)
    two_instants = local.utcoffset() != local.replace(fold=1).utcoffset()
    skipped = at.astimezone(LOCAL_ZONE).replace(tzinfo=None) != moment
    return Moment(at, len(whole), two_instants and not skipped)


def version_number(collected: str, reported: str, status: str = "F") -> int | None:
    """1 + 3 × seconds elapsed (UTC) from collection to report + rank of the status (P 0, F 1,
    C 2); None when the two times cannot order the report's versions (see ``_version``)."""
    start, end = dtm(collected), dtm(reported)
    if start is None or end is None or min(start.digits, end.digits) < _MINUTE:
        return None
    if end.ambiguous or end.at < start.at:
        return None
    seconds = int((end.at - start.at).total_seconds())
    version = 1 + 3 * seconds + {"F": 1, "C": 2}.get(status, 0)
    return version if version <= _MAX_VERSION else None


_TIME_FORMAT = "YYYYMMDDHHMM[SS][+ZZZZ]"


def version(collected: str, reported: str, status: str) -> tuple[int, list[Finding]]:
    """The versionNumber, or 1 with an error saying precisely why the report's versions
    cannot be ordered: the record store would file a later report behind an earlier one, or
    refuse it as a conflict, after the sender was told AA."""
    version = version_number(collected, reported, status)
    if version is not None:
        return version, []
    what, where, fix = _unordered(collected, reported)
    return 1, [
        error(
            "crbio.version",
            f"the report's versions cannot be ordered: {what}. Versions of one order are "
            "numbered from the time elapsed between specimen collection (OBR-7) and report "
            "(OBR-22), so that a later report supersedes an earlier one in the record",
            location=where,
            layer=LAYER,
            hl7_code=101 if "missing" in what else 102,
            fix=fix,
        )
    ]


def _unordered(collected: str, reported: str) -> tuple[str, str, str]:
    """What is wrong with OBR-7 / OBR-22, where, and what the sender should do."""
    start, end = dtm(collected), dtm(reported)
    if start is None or start.digits < _MINUTE:
        return (
            f"specimen collection time OBR-7 {_flaw(collected, start)}",
            "OBR-7",
            f"send OBR-7, the specimen collection time, to the minute at least ({_TIME_FORMAT}), "
            "the same in every report of the order",
        )
    if end is None or end.digits < _MINUTE:
        return (
            f"report time OBR-22 {_flaw(reported, end)} (MSH-7, the time the message was "
            "built, is not used: a message sent again is often built again)",
            "OBR-22",
            f"send OBR-22, the time this report was produced, to the minute at least "
            f"({_TIME_FORMAT}), the same when the report is sent again",
        )
    if end.ambiguous:
        return (
            f"report time OBR-22 {reported!r} has no offset and falls in the hour French clocks "
            "repeat when summer time ends: two reports in that hour cannot be told apart",
            "OBR-22",
            "send OBR-22 with its offset: +0200 for the first occurrence of the hour, +0100 "
            "for the second",
        )
    if end.at < start.at:
        return (
            f"report time OBR-22 {reported!r} is before collection OBR-7 {collected!r}",
            "OBR-22",
            "send the time the report was produced in OBR-22 and the specimen collection "
            "time in OBR-7, with their offsets if they are not French local time",
        )
    return (
        "collection and report are too far apart",
        "OBR-22",
        "check OBR-7 (collection) and OBR-22 (report) of the order",
    )


def _flaw(value: str, moment: Moment | None) -> str:
    if not value.strip():
        return "is missing"
    return f"{value!r} is " + ("not a DTM" if moment is None else "not precise to the minute")

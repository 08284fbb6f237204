"""Bounded IN lists: a statement names at most ``IN_LIST_MAX`` values, so that a large batch
is read or locked in a few statements rather than one with thousands of parameters."""

from __future__ import annotations

from collections.abc import Iterator

IN_LIST_MAX = 500


def chunks(values: list[str]) -> Iterator[list[str]]:
    """``values`` in consecutive slices of at most ``IN_LIST_MAX``, order kept."""
    return (values[i : i + IN_LIST_MAX] for i in range(0, len(values), IN_LIST_MAX))

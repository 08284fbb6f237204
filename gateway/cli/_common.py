"""Helpers shared by commands: input files and argparse formatting."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path


def expand(paths: Iterable[str], skip_suffix: str | None = None) -> list[tuple[str, Path]]:
    """(path as given, file) for each argument; directories give their files, sorted, but
    those named ``*skip_suffix``: `gateway sign DIR` and `gateway verify DIR` take the
    documents, not the signatures beside them (signing those, or looking for
    ``x.xades.xml.xades.xml``, is never what was meant). A file named on its own is kept."""
    out: list[tuple[str, Path]] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            out += [
                (str(f), f)
                for f in sorted(p.rglob("*"))
                if f.is_file() and not (skip_suffix and f.name.endswith(skip_suffix))
            ]
        else:
            out.append((given, p))
    return out


def command(sub, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

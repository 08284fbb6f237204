"""Helpers shared by commands: input files and argparse formatting."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path


def expand(paths: Iterable[str]) -> list[tuple[str, Path]]:
    """(path as given, file) for each argument; directories give their files, sorted."""
    out: list[tuple[str, Path]] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            out += [(str(f), f) for f in sorted(p.rglob("*")) if f.is_file()]
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

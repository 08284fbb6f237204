"""Secret files the gateway makes for itself on first use (the token secret, the envelope
seal key): created whole or not at all, so that no process ever reads one half-written."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_once(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` (mode 0600) unless it exists; True if this call created it.

    Written to a temporary file in the same directory, synced, then linked into place: the
    link fails if another process made the file first, whose content is then kept and used by
    both. Creating the file and writing it afterwards let a racing process read it empty.
    OSError when the directory cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        _sync_directory(path.parent)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """The new name made durable (a crash must not lose a key already used)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

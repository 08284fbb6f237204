"""Terminal output for batch commands: a progress bar (only on a terminal) and aligned tables.

On a TTY the bar redraws one line on stderr; when output is piped or redirected nothing is
drawn, so logs and scripts see only the plain lines the command prints.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import TextIO


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self._total = max(total, 1)
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty()
        self._drawn = False

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        width = shutil.get_terminal_size((80, 20)).columns
        bar_width = max(10, min(40, width - 50))
        filled = int(bar_width * done / self._total)
        line = f"[{'#' * filled}{'-' * (bar_width - filled)}] {done}/{self._total} {note}"
        self._stream.write("\r" + line[: width - 1].ljust(width - 1))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], max_width: int = 80) -> str:
    """Left-aligned columns; cells longer than ``max_width`` are cut with an ellipsis."""
    cells = [[_cut(str(c), max_width) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

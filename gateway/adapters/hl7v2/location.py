"""Locations inside an HL7v2 message: ``PID-3[1].4.2`` ⇄ indexes ⇄ ERR-2 (ERL data type)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_PATH = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<segrep>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\[(?P<rep>\d+)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?$"
)


@dataclass(frozen=True, slots=True)
class Location:
    """Segment (and its occurrence), field, repetition, component, subcomponent; 1-based."""

    segment: str
    occurrence: int = 1
    field: int | None = None
    repetition: int = 1
    component: int | None = None
    subcomponent: int | None = None

    @classmethod
    @functools.lru_cache(maxsize=1024)  # frozen values, asked for per OBX by converters
    def parse(cls, path: str) -> Location:
        m = _PATH.match(path)
        if not m:
            raise ValueError(f"not an HL7v2 location: {path!r}")

        def num(name: str) -> int | None:
            return int(m[name]) if m[name] else None

        return cls(
            segment=m["seg"],
            occurrence=num("segrep") or 1,
            field=num("field"),
            repetition=num("rep") or 1,
            component=num("comp"),
            subcomponent=num("sub"),
        )

    def __str__(self) -> str:
        text = self.segment + (f"[{self.occurrence}]" if self.occurrence != 1 else "")
        if self.field is None:
            return text
        text += f"-{self.field}"
        if self.repetition != 1 or self.component is not None:
            text += f"[{self.repetition}]"
        if self.component is not None:
            text += f".{self.component}"
            if self.subcomponent is not None:
                text += f".{self.subcomponent}"
        return text

    def erl(self, component_sep: str = "^") -> str:
        """As an ERR-2 ERL value: segment^sequence^field^repetition^component^subcomponent."""
        parts = [self.segment, str(self.occurrence)]
        if self.field is not None:
            parts += [str(self.field), str(self.repetition)]
            if self.component is not None:
                parts.append(str(self.component))
                if self.subcomponent is not None:
                    parts.append(str(self.subcomponent))
        return component_sep.join(parts)

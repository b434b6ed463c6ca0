"""Go `time.ParseDuration` / `Duration.String` semantics, for flags and MHC variables."""

from __future__ import annotations

import re

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek small letter mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_COMPONENT = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")


class GoDurationError(ValueError):
    """A string that Go's time.ParseDuration rejects; the message matches Go's."""


def parse_go_duration(text: str) -> float:
    """Return the duration in seconds, accepting exactly what time.ParseDuration accepts."""
    original = text
    sign = 1.0
    if text[:1] in ("-", "+"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if text == "":
        raise GoDurationError(f'time: invalid duration "{original}"')

    total = 0.0
    position = 0
    while position < len(text):
        match = _COMPONENT.match(text, position)
        assert match is not None  # the pattern can match the empty string
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        if not whole and len(fraction) <= 1:
            raise GoDurationError(f'time: invalid duration "{original}"')
        if not unit:
            raise GoDurationError(f'time: missing unit in duration "{original}"')
        if unit not in _UNIT_SECONDS:
            raise GoDurationError(f'time: unknown unit "{unit}" in duration "{original}"')
        total += float((whole or "0") + fraction) * _UNIT_SECONDS[unit]
        position = match.end()
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Format like Go's Duration.String for whole and fractional seconds (30m0s, 1h0m0s, 1.5s)."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        for unit, size in (("ms", 1e-3), ("\u00b5s", 1e-6), ("ns", 1e-9)):
            if seconds >= size:
                return f"{sign}{_trim(seconds / size)}{unit}"
    hours = int(seconds // 3600)
    minutes = int((seconds % 3600) // 60)
    rest = seconds - hours * 3600 - minutes * 60
    if hours:
        return f"{sign}{hours}h{minutes}m{_trim(rest)}s"
    if minutes:
        return f"{sign}{minutes}m{_trim(rest)}s"
    return f"{sign}{_trim(rest)}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"

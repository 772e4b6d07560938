"""Quantities given as text with units: durations, bandwidths and byte sizes.

Parsers in the style of ``settings``: text in, value out, ``ValueError`` saying what
was expected. Used by the node's settings and fault settings and by ``qpumesh fault``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|µs|ms|s|m)?\s*$")
_DURATION_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_BANDWIDTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*(?:/\s*s)?\s*$")
_BANDWIDTH_UNITS = {
    "": 1.0, "b": 1.0,
    "kb": 1e3, "mb": 1e6, "gb": 1e9,
    "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30,
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
}  # fmt: skip
_BYTE_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")
_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def duration_ms(text: str) -> float:
    """Parse a duration into milliseconds: "20ms", "1.5s", "500us", "2m"; a bare number is ms.

    Raises:
        ValueError: the text is not a non-negative duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected a duration such as 20ms, 1.5s or 500us, got {text!r}")
    value = float(match.group(1)) * _DURATION_MS[match.group(2) or "ms"]
    if not math.isfinite(value):
        raise ValueError(f"expected a finite duration, got {text!r}")
    return value


def bandwidth(text: str) -> float:
    """Parse a bandwidth into bytes per second: "1MB/s", "512KiB/s", "10Mbit/s", "250000".

    Decimal (kB, MB, GB), binary (KiB, MiB, GiB) and bit (kbit, Mbit, Gbit) units are
    accepted, case-insensitively, with or without "/s"; a bare number is bytes/s and 0
    means unlimited.

    Raises:
        ValueError: the text is not a non-negative bandwidth.
    """
    match = _BANDWIDTH.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _BANDWIDTH_UNITS:
        raise ValueError(f"expected a bandwidth such as 1MB/s, 512KiB/s or 10Mbit/s, got {text!r}")
    value = float(match.group(1)) * _BANDWIDTH_UNITS[unit]
    if not math.isfinite(value):
        raise ValueError(f"expected a finite bandwidth, got {text!r}")
    return value


def byte_size(largest: int) -> Callable[[str], int]:
    """Return a parser of byte counts in 1..``largest``: "67108864", "64MiB", "1GB"."""

    def parse(text: str) -> int:
        match = _BYTE_SIZE.match(text)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _BYTE_UNITS:
            raise ValueError(f"expected a byte count such as 67108864 or 64MiB, got {text!r}")
        value = int(match.group(1)) * _BYTE_UNITS[unit]
        if not 1 <= value <= largest:
            raise ValueError(f"expected 1..{largest} bytes (a gRPC limit), got {value}")
        return value

    return parse

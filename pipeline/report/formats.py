"""The report's numbers and messages in words: the page's filters, the plots' labels, the one-line notes."""
from __future__ import annotations

from typing import Optional


def format_number(value: Optional[float], signed: bool = False, count: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:{'+' if signed else ''}{',.0f' if count else '.4f'}}"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def last_line(text: str) -> str:
    """The last non-empty line: a traceback's exception."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")

"""The one error type hhc raises for a user's mistake.

Anything else escaping hhc is a bug in hhc. Errors about DSL text carry a location and render as
``file:line:col: error: message`` followed by the source line and a caret, the way compilers do.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    path: str
    line: int          # 1-based
    column: int        # 1-based
    line_text: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class HHCError(Exception):
    """A user-facing error: bad DSL text, a bad experiment file, an impossible request."""
    exit_code = 1

    def __init__(self, message: str, location: SourceLocation | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            loc = self.location
            parts.append(f"{loc}: error: {self.message}")
            if loc.line_text:
                text = loc.line_text.rstrip("\n")
                parts.append(f"    {text}")
                # keep tabs so the caret lines up under tab-indented source
                pad = "".join(c if c == "\t" else " " for c in text[: loc.column - 1])
                parts.append(f"    {pad}^")
        else:
            parts.append(f"error: {self.message}")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class Interrupted(HHCError):
    """The user stopped a run (Ctrl-C): exit status 130, as shells expect."""
    exit_code = 130

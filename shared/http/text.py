"""Text a client may send in a body: bounded, and free of control characters.

PostgreSQL stores no NUL in `text` or `jsonb` (the write would fail after the
command was decided), and a C0 control or DEL in a name, a reference or an
email is never meant: all are refused at the edge with a 422 naming the field.
"""

from __future__ import annotations

from typing import Final

import msgspec

# JSON Schema patterns are ECMA-262 and Python's re reads them the same way.
PRINTABLE: Final = r"^[^\x00-\x1f\x7f]*$"
EMAIL: Final = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"


def printable(*, max_length: int, min_length: int = 1, description: str | None = None) -> msgspec.Meta:
    """Constraints of a free-text field: its length, and no control characters."""
    return msgspec.Meta(
        min_length=min_length, max_length=max_length, pattern=PRINTABLE, description=description
    )

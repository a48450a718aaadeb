"""Email addresses as identity keys: one normal form, so that case and Unicode width variants collide."""

from __future__ import annotations

import unicodedata


def normalise_email(email: str) -> str:
    """NFKC, then case-folded, then trimmed: the key of the email reservation."""
    return unicodedata.normalize("NFKC", email).casefold().strip()

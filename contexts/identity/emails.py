"""Email addresses as identity keys: one normal form, so that case and Unicode width variants collide."""

from __future__ import annotations

import unicodedata


def normalise_email(email: str) -> str:
    """NFKC, case-folded, NFKC again (Unicode's NFKC_Casefold closure), trimmed: the reservation key.

    Case folding can undo a normal form (U+0390 folds to a decomposed
    sequence), so the second NFKC makes canonically equal folds one key.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold()).strip()

"""Values the documents' examples share (docs only: nothing decides on them)."""

from __future__ import annotations

from typing import Final

# A real token's shape: base64url of {"v": 1, "streams": {stream id: version}}.
EXAMPLE_TOKEN: Final = "eyJ2IjoxLCJzdHJlYW1zIjp7IjAxOTJmNWU0LTdjM2EtN2QyZS05YjFhLTNmNGU1ZDZjN2I4YSI6Mn19"  # noqa: S105 - a consistency token, not a secret

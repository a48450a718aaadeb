"""The upcasters: an event of an older schema version reads as the current one."""

from __future__ import annotations

from pathlib import Path

from contexts.catalogue import REGISTRY
from contexts.identity.events import ApiKeyIssued

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "events"


def test_an_api_key_issued_before_tiers_reads_as_a_free_key() -> None:
    v1 = (GOLDEN / "ApiKeyIssued.v1.json").read_bytes()
    assert b"tier" not in v1
    decoded = REGISTRY.decode("ApiKeyIssued", 1, v1)
    assert isinstance(decoded, ApiKeyIssued)
    assert decoded.tier == "free"
    assert decoded.scopes == ("ledger:read",)


def test_the_current_version_is_read_as_written() -> None:
    decoded = REGISTRY.decode("ApiKeyIssued", 2, (GOLDEN / "ApiKeyIssued.v2.json").read_bytes())
    assert isinstance(decoded, ApiKeyIssued)
    assert decoded.tier == "pro"

"""The in-process answer tier: kept only if no tag changed since its lookup began; dropped on invalidation."""

from __future__ import annotations

from dataclasses import dataclass

from shared.cache.local import LocalAnswers

TAG = "p:tag:account:1"
OTHER = "p:tag:account:2"


@dataclass
class Switch:
    usable: bool = True


def tier(max_entries: int = 10, ttl_seconds: float = 60) -> tuple[LocalAnswers, Switch]:
    local, switch = LocalAnswers(max_entries=max_entries, ttl_seconds=ttl_seconds), Switch()
    local.trust(switch)
    return local, switch


def test_a_kept_answer_is_served_until_one_of_its_tags_changes() -> None:
    local, _ = tier()
    local.keep("k", b"body", '"e"', [TAG], local.mark())
    assert local.get("k") == (b"body", '"e"')
    local.invalidate([OTHER.encode()])
    assert local.get("k") == (b"body", '"e"')
    local.invalidate([TAG.encode()])
    assert local.get("k") is None


def test_an_answer_whose_tag_changed_during_its_lookup_is_not_kept() -> None:
    """The stale-set race, in process: rows read before a change must not be kept after it."""
    local, _ = tier()
    since = local.mark()
    local.invalidate([TAG.encode()])
    local.keep("k", b"old", '"e"', [TAG], since)
    assert local.get("k") is None
    local.keep("k", b"new", '"f"', [TAG], local.mark())
    assert local.get("k") == (b"new", '"f"')


def test_nothing_is_served_or_kept_while_tracking_cannot_be_trusted() -> None:
    local, switch = tier()
    local.keep("k", b"body", '"e"', [TAG], local.mark())
    switch.usable = False
    assert local.get("k") is None
    local.keep("j", b"body", '"e"', [TAG], local.mark())
    switch.usable = True
    assert local.get("j") is None


def test_everything_goes_when_anything_may_have_changed() -> None:
    local, _ = tier()
    since = local.mark()
    local.keep("k", b"body", '"e"', [TAG], since)
    local.invalidate(None)
    assert local.get("k") is None
    local.keep("j", b"body", '"e"', [OTHER], since)  # began before the flush
    assert local.get("j") is None


def test_the_oldest_answer_makes_room_and_old_answers_expire() -> None:
    local, _ = tier(max_entries=2)
    for key in ("a", "b", "c"):
        local.keep(key, key.encode(), '"e"', [TAG], local.mark())
    assert local.get("a") is None
    assert local.get("c") == (b"c", '"e"')
    assert len(local) == 2
    expiring, _ = tier(ttl_seconds=-1)
    expiring.keep("k", b"body", '"e"', [TAG], expiring.mark())
    assert expiring.get("k") is None

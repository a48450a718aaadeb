"""Which address a request comes from, and the IP allow and deny lists."""

from __future__ import annotations

from typing import Any

import pytest

from shared.http.client_address import ClientAddresses
from shared.http.ip_filter import IpFilter


def scope(peer: str | None, *forwarded: str) -> Any:
    return {
        "type": "http",
        "client": (peer, 5000) if peer is not None else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


PROXIES = ClientAddresses(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        # No trusted proxy: the header is anyone's, so it is ignored.
        (scope("203.0.113.9", "198.51.100.1"), "203.0.113.9"),
        # From a trusted proxy: the nearest hop that is not ours.
        (scope("10.0.0.2", "198.51.100.1"), "198.51.100.1"),
        (scope("10.0.0.2", "192.0.2.66, 198.51.100.1, 10.1.1.1"), "198.51.100.1"),
        # Several header lines are one list, in order.
        (scope("10.0.0.2", "192.0.2.66", "198.51.100.1"), "198.51.100.1"),
        # Everything ours: the farthest hop.
        (scope("10.0.0.2", "10.9.9.9"), "10.9.9.9"),
        (scope("10.0.0.2"), "10.0.0.2"),
        # Garbage ends the walk at the proxy that passed it on.
        (scope("10.0.0.2", "evil, 10.1.1.1"), "10.1.1.1"),
        # IPv6 proxies, and IPv4 clients seen through IPv6.
        (scope("fd00::1", "2001:db8::7"), "2001:db8::7"),
        (scope("::ffff:198.51.100.4"), "198.51.100.4"),
        (scope(None, "198.51.100.1"), "unknown"),
    ],
)
def test_the_client_address_trusts_forwarded_for_only_from_proxies(request_scope: Any, expected: str) -> None:
    assert PROXIES.text_of(request_scope) == expected


def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    assert ClientAddresses().text_of(scope("10.0.0.2", "198.51.100.1")) == "10.0.0.2"


async def _never(*_: Any) -> Any:
    raise AssertionError("not reached")


def ip_filter(allow: list[str], deny: list[str]) -> IpFilter:
    return IpFilter(_never, PROXIES, allow=allow, deny=deny)


def test_deny_wins_and_an_allow_list_refuses_everyone_else() -> None:
    only_docs = ip_filter(allow=["192.0.2.0/24"], deny=["192.0.2.66"])
    assert only_docs.permits(scope("192.0.2.1"))
    assert not only_docs.permits(scope("192.0.2.66"))
    assert not only_docs.permits(scope("198.51.100.1"))
    # The forwarded address is the one judged, not the proxy's.
    assert not only_docs.permits(scope("10.0.0.2", "198.51.100.1"))
    assert only_docs.permits(scope("10.0.0.2", "192.0.2.9"))
    assert not only_docs.permits(scope(None))
    deny_only = ip_filter(allow=[], deny=["198.51.100.0/24"])
    assert deny_only.permits(scope("192.0.2.1"))
    assert deny_only.permits(scope(None))
    assert not deny_only.permits(scope("198.51.100.200"))


async def test_a_refused_address_gets_a_403_problem_without_reaching_the_app() -> None:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await ip_filter(allow=[], deny=["198.51.100.0/24"])(scope("198.51.100.1"), _never, send)
    assert sent[0]["status"] == 403
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert b'"status":403' in sent[1]["body"]

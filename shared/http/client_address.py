"""The client's IP address: the peer's, or `X-Forwarded-For`'s when the peer is a trusted proxy.

`X-Forwarded-For` is anyone's to write, so it counts only as far as it was
written by proxies of ours: walking it from the right (the hop nearest to
us), each address a trusted proxy added is skipped, and the first one that is
not a trusted proxy is the client. With no trusted proxies configured the
header is ignored. A hop that is not an address ends the walk at the proxy
that passed it on: a client must not choose its own key by writing garbage.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Final

from litestar.types import Scope

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_FOR: Final = b"x-forwarded-for"
UNKNOWN: Final = "unknown"


def parse_networks(cidrs: Sequence[str]) -> tuple[IpNetwork, ...]:
    """CIDR blocks (a bare address is a block of one); ValueError names the bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {cidr!r}") from None
    return tuple(networks)


def parse_address(text: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 client reached over IPv6 is still that IPv4 client.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def within(address: IpAddress, networks: Sequence[IpNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


class ClientAddresses:
    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        self._trusted = parse_networks(trusted_proxies)

    def of(self, scope: Scope) -> IpAddress | None:
        """The client's address, or None when the peer has none (a Unix socket)."""
        client = scope.get("client")
        peer = parse_address(client[0]) if client else None
        if peer is None or not self._trusted or not within(peer, self._trusted):
            return peer
        hops = [
            hop
            for name, value in scope.get("headers", ())
            if name == FORWARDED_FOR
            for hop in value.decode("latin-1").split(",")
        ]
        nearest = peer
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return nearest
            if not within(address, self._trusted):
                return address
            nearest = address
        return nearest

    def text_of(self, scope: Scope) -> str:
        address = self.of(scope)
        return UNKNOWN if address is None else str(address)

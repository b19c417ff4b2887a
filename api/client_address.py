"""Who is at the other end: the peer's address, or the client a trusted proxy names.

``X-Forwarded-For`` is read only when the peer is one of ``TRUSTED_PROXIES`` (addresses or
networks); its hops are then walked from the right, past every trusted proxy, and the first
other address is the client. Anyone else's ``X-Forwarded-For`` is ignored, so a caller cannot
choose the address its failed logins (or, with auth disabled, its rate limit) are counted by.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Networks from ``10.0.0.0/8``-style or single-address strings (``ValueError`` if bad)."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(connection: HTTPConnection, proxies: Sequence[Network]) -> str:
    """The client's address as this api should count it (see the module's docstring)."""
    peer = connection.client.host if connection.client is not None else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [
        hop.strip()
        for value in connection.headers.getlist("x-forwarded-for")
        for hop in value.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:  # not an address: the proxy chain is broken, count the proxy
                return peer
    return hops[0] if hops else peer

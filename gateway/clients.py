"""Who a request comes from, as the gateway's per-client limits count it.

A client is its transport peer's address (never a header: anyone writes those), grouped so
that one party cannot multiply its allowance by using more of the addresses it holds: an
IPv4 address stands for itself, an IPv6 address for its /64 network (the smallest
allocation an end site gets, so a single host may hold all 2**64 of them). An IPv4 address
reached over a dual-stack socket (`::ffff:192.0.2.1`) is that IPv4 address.

Behind a reverse proxy every request has the proxy's address, so every client is one: the
per-client limits then act for all callers together (give integrators API keys).
"""

from __future__ import annotations

import ipaddress

__all__ = ["client_of"]

IPV6_PREFIX = 64


def client_of(address: str) -> str:
    """The client the peer `address` stands for: an IPv4 address as is, an IPv6 address as
    its /64 network (`2001:db8:1:2::/64`); anything that is no IP address (a unix socket's
    name, Quart's `<local>` when the server gave none) as is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    # From the integer, not the text: a scoped address (fe80::1%eth0) has no network spelling.
    host_bits = 128 - IPV6_PREFIX
    return str(ipaddress.IPv6Network((int(ip) >> host_bits << host_bits, IPV6_PREFIX)))

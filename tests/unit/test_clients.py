"""Who a request comes from (gateway.clients): the key of every per-client limit."""

from __future__ import annotations

import pytest

from gateway.clients import client_of


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        ("203.0.113.66", "203.0.113.66"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # the same /64
        ("2001:DB8:1:2:0:0:0:7", "2001:db8:1:2::/64"),  # one spelling per network
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64 is another client
        ("fe80::1%eth0", "fe80::/64"),  # scoped
        ("::ffff:203.0.113.66", "203.0.113.66"),  # IPv4 over a dual-stack socket
        ("::1", "::/64"),
        ("<local>", "<local>"),  # Quart's, when the server names no peer
        ("", ""),
    ],
)
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(peer, client):
    assert client_of(peer) == client

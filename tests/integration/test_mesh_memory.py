"""What py-libp2p's gossip keeps in memory, found while measuring the partition test's RSS.

- GossipSub's equivocation check kept up to 1,000 whole messages (our own publishes
  included): at 20 publishes/s of 64 KiB, RSS grew 1.3 MB/s until 64 MB were held.
- Its adaptive gossip set the 1 s heartbeat to 30-60 s once it judged the network unhealthy
  (a lost peer, no peer): the mesh then took a minute to repair, and the message cache,
  shifted per heartbeat, held a minute of publishes.
Real hosts over 127.0.0.1.
"""

from __future__ import annotations

import trio
from libp2p.pubsub.pb import rpc_pb2

from node.mesh import HEARTBEATS
from tests.integration.test_mesh import make_node, until


async def test_the_equivocation_check_keeps_fingerprints_not_messages():
    async with make_node(0) as node:
        router = node._parts().gossip._router
        for _ in range(200):
            await node.publish(HEARTBEATS, bytes(64 * 1024))
        assert router.equivocation_detection == {}  # py-libp2p's store of whole messages stays empty
        # The verdict is the same: an origin and seqno reused with other content is refused.
        first = rpc_pb2.Message(from_id=b"peer", seqno=b"\x01", data=b"a", topicIDs=[HEARTBEATS])
        other = rpc_pb2.Message(from_id=b"peer", seqno=b"\x01", data=b"b", topicIDs=[HEARTBEATS])
        assert router._check_equivocation(first)
        assert router._check_equivocation(first)
        assert not router._check_equivocation(other)


async def test_the_heartbeat_stays_at_one_second_when_the_mesh_is_unhealthy():
    async with make_node(0) as node:  # no peer at all: the least healthy mesh there is
        router = node._parts().gossip._router
        router.last_health_update = 0  # py-libp2p judges health every 30 s: have it judge now
        await trio.sleep(2.5)
        assert router.heartbeat_interval == 1
        await node.publish(HEARTBEATS, b"beat")
        history = router.mcache.history
        await until(lambda: not any(entries for entries in history))  # shifted out within 5 heartbeats

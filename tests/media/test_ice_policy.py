"""Issue 12 item 3: bot peers accept remote ICE candidates (trickled and inside SDP) only per the ICE policy."""

from __future__ import annotations

import ipaddress

import pytest
import trio
from media_helpers import LOOPBACK

from voicebot.media import DEFAULT_ICE_DENY, IcePolicy, MediaConfig, PeerConnection, open_media_loop, parse_networks
from voicebot.metrics import BOT_REGISTRY

DENIED = ["169.254.169.254", "169.254.0.1", "fe80::1", "fe80::abcd:1%eth0", "224.0.0.251", "239.255.255.250",
          "ff02::1", "0.0.0.0", "0.1.2.3", "255.255.255.255", "::", "::ffff:169.254.169.254", "internal.corp",
          "metadata.google.internal"]
LOOPBACK_HOSTS = ["127.0.0.1", "127.8.8.8", "::1", "::ffff:127.0.0.1"]
ALLOWED = ["192.168.1.20", "10.0.0.5", "8.8.8.8", "2001:db8::5", "abcd-1234.local"]


@pytest.mark.parametrize("host", DENIED + LOOPBACK_HOSTS)
def test_default_policy_refuses(host: str) -> None:
    assert IcePolicy.from_networks(DEFAULT_ICE_DENY, allow_loopback=False).refusal(host) is not None


@pytest.mark.parametrize("host", ALLOWED)
def test_default_policy_accepts(host: str) -> None:
    assert IcePolicy.from_networks(DEFAULT_ICE_DENY, allow_loopback=False).refusal(host) is None


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_allowed_only_when_configured(host: str) -> None:
    assert IcePolicy.from_networks(DEFAULT_ICE_DENY, allow_loopback=True).refusal(host) is None
    assert MediaConfig(allow_loopback=True).ice_policy.refusal(host) is None
    assert MediaConfig(host_addresses=("127.0.0.1",)).ice_policy.refusal(host) is None
    assert MediaConfig().ice_policy.refusal(host) is not None


def test_every_address_of_every_denied_network_is_refused() -> None:
    policy = MediaConfig().ice_policy
    for cidr in DEFAULT_ICE_DENY:
        network = ipaddress.ip_network(cidr)
        for address in (network.network_address, network.broadcast_address,
                        network.network_address + (network.num_addresses // 2)):
            assert policy.refusal(str(address)) is not None, address


def test_custom_networks_and_parsing() -> None:
    assert parse_networks(" 10.0.0.0/8, ,192.168.0.1/16 ") == ("10.0.0.0/8", "192.168.0.0/16")
    with pytest.raises(ValueError, match="not a network"):
        parse_networks("10.0.0.0/8,nonsense")
    config = MediaConfig(ice_deny_networks="10.0.0.0/8")
    assert config.ice_policy.refusal("10.1.2.3") is not None
    assert config.ice_policy.refusal("169.254.169.254") is None  # replaced, not added to


def test_filter_sdp_drops_only_refused_candidate_lines() -> None:
    sdp = ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
           "a=candidate:1 1 udp 2122260223 192.168.1.20 50000 typ host\r\n"
           "a=candidate:2 1 udp 2122260223 169.254.169.254 80 typ host\r\n"
           "a=candidate:3 1 udp 1686052607 8.8.8.8 50001 typ srflx raddr 169.254.1.1 rport 9\r\n"
           "a=candidate:4 1 udp 2122260223 127.0.0.1 22 typ host\r\n"
           "a=end-of-candidates\r\n")
    kept, refused = MediaConfig().ice_policy.filter_sdp(sdp)
    assert [host for host, _ in refused] == ["169.254.169.254", "127.0.0.1"]
    assert "192.168.1.20" in kept and "8.8.8.8" in kept and "a=end-of-candidates" in kept
    assert "169.254.169.254 80" not in kept and "127.0.0.1 22" not in kept


def _remote_candidate_hosts(pc: PeerConnection) -> set[str]:
    hosts: set[str] = set()
    for transceiver in pc.pc.getTransceivers():
        ice = transceiver.sender.transport.transport
        hosts |= {c.host for c in ice._connection.remote_candidates}
    return hosts


def _refused_metric(source: str) -> float:
    return BOT_REGISTRY.get_sample_value("voicebot_ice_candidates_refused_total", {"source": source}) or 0.0


@pytest.mark.media
async def test_bot_peer_refuses_hostile_candidates_from_a_client() -> None:
    """A client offers (in its SDP and trickled) candidates at the metadata service, link-local, multicast,
    "this network" and a host name; the bot side refuses and counts every one and still connects."""
    hostile = ["169.254.169.254", "224.0.0.251", "0.0.0.0", "fe80::1", "metadata.internal"]
    bot_config = MediaConfig(allow_loopback=True)  # the test host may have only loopback to connect over
    before = _refused_metric("sdp"), _refused_metric("trickle")
    with trio.fail_after(20):
        async with open_media_loop() as runtime, \
                PeerConnection(LOOPBACK, runtime=runtime) as client, \
                PeerConnection(bot_config, runtime=runtime) as bot:
            await client.add_audio_sender()
            await bot.add_audio_sender()
            offer = await client.create_offer()
            extra = "".join(f"a=candidate:9{i} 1 udp 2122260223 {h} {3000 + i} typ host\r\n"
                            for i, h in enumerate(hostile))
            sdp = offer.sdp.replace("a=end-of-candidates\r\n", extra + "a=end-of-candidates\r\n", 1)
            assert sdp != offer.sdp
            answer = await bot.create_answer({"type": "offer", "sdp": sdp})
            for i, host in enumerate(hostile):
                await bot.add_ice_candidate({"candidate": f"candidate:8{i} 1 udp 2122260223 {host} {4000 + i} typ host",
                                             "sdpMid": "0", "sdpMLineIndex": 0})
            await client.set_remote_description(answer)
            await client.wait_connected()
            await bot.wait_connected()
            assert bot.refused_candidates == 2 * len(hostile)
            assert not _remote_candidate_hosts(bot) & set(hostile)
            assert _remote_candidate_hosts(bot)  # the legitimate candidates were kept
    assert _refused_metric("sdp") - before[0] == len(hostile)
    assert _refused_metric("trickle") - before[1] == len(hostile)

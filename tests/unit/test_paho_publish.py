"""The one-copy PUBLISH decoder against paho's own, on valid and random packets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from aggregator import paho_publish
from aggregator.paho_publish import (
    ORIGINAL,
    ORIGINAL_PUBACK,
    OwnedPacket,
    decode_puback,
    decode_publish,
)

V311, V5 = MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv5


def outcome(fn: Any, header: int, packet: bytes, protocol: MQTTProtocolVersion) -> Any:
    """What a decoder makes of a packet, comparable across decoders."""
    try:
        p = fn(header, bytearray(packet), protocol)
    except MalformedPacket:
        return "malformed"
    props = None if p.properties is None else (p.properties.packetType, str(p.properties))
    return (p.dup, p.qos, p.retain, p.topic, p.mid, props, p.payload)


def properties(expiry: int | None, content: str | None,
               user: list[tuple[str, str]]) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if expiry is not None:
        props.MessageExpiryInterval = expiry
    if content is not None:
        props.ContentType = content
    for pair in user:
        props.UserProperty = pair
    packed: bytes = props.pack()  # type: ignore[no-untyped-call]
    return packed


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=300)
@given(qos=st.integers(0, 2), flags=st.integers(0, 1), topic=st.binary(max_size=40),
       mid=st.integers(1, 65535), payload=st.binary(max_size=300), v5=st.booleans(),
       expiry=st.none() | st.integers(0, 2**32 - 1), content=st.none() | texts,
       user=st.lists(st.tuples(texts, texts), max_size=3))
def test_valid_packets_decode_exactly_as_paho(
    *, qos: int, flags: int, topic: bytes, mid: int, payload: bytes, v5: bool,
    expiry: int | None, content: str | None, user: list[tuple[str, str]],
) -> None:
    header = 0x30 | (qos << 1) | (flags << 3) | flags
    packet = len(topic).to_bytes(2, "big") + topic
    if qos:
        packet += mid.to_bytes(2, "big")
    if v5:
        packet += properties(expiry, content, user)
    packet += payload
    protocol = V5 if v5 else V311
    want = outcome(ORIGINAL, header, packet, protocol)
    assert outcome(decode_publish, header, packet, protocol) == want
    owned = OwnedPacket(packet)  # the aggregator's buffers: the payload is the buffer
    if want == "malformed":  # an empty 3.1.1 topic, or a NUL in a property string
        with pytest.raises(MalformedPacket):
            decode_publish(header, owned, protocol)
        return
    assert want[-1] == payload
    got = decode_publish(header, owned, protocol)
    assert got.payload is owned
    assert owned == payload
    assert (got.qos, got.topic, got.mid) == (want[1], want[3], want[4])


@settings(max_examples=500)
@given(header=st.integers(0x30, 0x3F), packet=st.binary(max_size=60), v5=st.booleans())
def test_random_bytes_get_paho_verdict(header: int, packet: bytes, v5: bool) -> None:
    protocol = V5 if v5 else V311
    assert outcome(decode_publish, header, packet, protocol) == \
        outcome(ORIGINAL, header, packet, protocol)


@pytest.mark.parametrize("packet", [b"", b"\x00", b"\x00\x05ab", b"\x00\x01a\x00"])
def test_truncated_packets_are_malformed(packet: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_publish(0x32, bytearray(packet), V311)


def puback_outcome(fn: Any, packet: bytes, protocol: MQTTProtocolVersion) -> Any:
    try:
        p = fn(0x40, bytearray(packet), protocol)
    except MalformedPacket:
        return "malformed"
    return p.mid, str(p.reason), p.reason.value, str(p.properties)


@settings(max_examples=300)
@given(packet=st.binary(max_size=8), v5=st.booleans())
def test_pubacks_decode_as_paho(packet: bytes, v5: bool) -> None:
    protocol = V5 if v5 else V311
    assert puback_outcome(decode_puback, packet, protocol) == \
        puback_outcome(ORIGINAL_PUBACK, packet, protocol)


def test_install_is_idempotent_and_replaces_pahos_decoders() -> None:
    try:
        assert paho_publish.install()
        assert paho_publish.install()
        assert _packet.decode_publish is decode_publish
        assert _packet.decode_puback is decode_puback
    finally:
        _packet.decode_publish = ORIGINAL
        _packet.decode_puback = ORIGINAL_PUBACK

"""PUBLISH decoding for paho without copying the payload five times.

paho 2.2 decodes a PUBLISH with ``struct.unpack(f"!H{n}s")`` and slicing: the whole
payload is copied once per step (length, topic, packet id, and on MQTT 5 twice more
for the properties), five copies of every 4 MB delta of a 1M-parameter model, and
each a fresh allocation that glibc's heap then keeps. :func:`decode_publish` reads
the header through a ``memoryview`` and copies the payload once, or not at all when
paho read the packet into an :class:`OwnedPacket`: the aggregator's client does, and
takes the buffer itself as the payload. Otherwise it returns the same
``PublishPacket`` as paho, raises the same ``MalformedPacket`` for bad input (the
tests compare it with paho's own on random packets), and it is installed only over
the paho version it was checked against.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

ORIGINAL = _packet.decode_publish  # paho's own, kept for the comparison tests
_VBI_MAX = 4  # a Variable Byte Integer is at most four bytes long


class OwnedPacket(bytearray):
    """A packet buffer whose PUBLISH payload may be the buffer itself.

    paho drops its reference to a packet's buffer once the packet is handled, so
    the decoder can strip the header in place (a prefix ``del`` on a bytearray moves
    a start offset, it copies nothing) and hand the buffer over. The payload is then
    a bytearray, which only a client that asked for it (by reading into one) sees,
    and a PUBLISH without properties gets the shared :data:`NO_PROPERTIES`.
    """


NO_PROPERTIES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # read-only


def _decode(header: int, packet: bytes | bytearray,
            protocol: MQTTProtocolVersion) -> _packet.PublishPacket:
    dup = ((header & 0x08) >> 3) != 0
    qos = (header & 0x06) >> 1
    retain = (header & 0x01) != 0
    with memoryview(packet) as view:
        size = len(view)
        if size < 2:
            raise MalformedPacket("PUBLISH too short for its topic length")
        pos = 2 + int.from_bytes(view[0:2], "big")
        if pos > size:
            raise MalformedPacket("PUBLISH topic longer than the packet")
        topic = bytes(view[2:pos])
        if protocol != MQTTProtocolVersion.MQTTv5 and len(topic) == 0:
            raise MalformedPacket("topic can't be empty in MQTTv3")
        mid = 0
        if qos > 0:
            if pos + 2 > size:
                raise MalformedPacket("PUBLISH too short for its packet id")
            mid = int.from_bytes(view[pos:pos + 2], "big")
            pos += 2
        owned = packet if isinstance(packet, OwnedPacket) else None
        properties = None
        if protocol == MQTTProtocolVersion.MQTTv5:
            length, used = VariableByteIntegers.decode(bytes(view[pos:pos + _VBI_MAX]))  # type: ignore[no-untyped-call]
            end = pos + used + length
            if end > size:
                raise MalformedPacket("PUBLISH properties longer than the packet")
            if owned is not None and length == 0:
                properties = NO_PROPERTIES  # a third of the cost of a small PUBLISH
            else:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.unpack(bytes(view[pos:end]))  # type: ignore[no-untyped-call]
            pos = end
        payload = owned if owned is not None else bytes(view[pos:])
    if owned is not None:
        del owned[:pos]  # after the view is released: a bytearray with views can't resize
    return _packet.PublishPacket(dup=dup, qos=qos, retain=retain, topic=topic, mid=mid,
                                 properties=properties, payload=payload)


decode_publish: Any = _packet.convert_exception(_decode)  # paho's error mapping, too

ORIGINAL_PUBACK = _packet.decode_puback
PUBACK_OK = ReasonCode(PacketTypes.PUBACK)  # read-only
PUBACK_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]


def decode_puback(header: int, packet: bytes | bytearray,
                  protocol: MQTTProtocolVersion) -> _packet.PubackPacket:
    """paho's ``decode_puback``, minus two fresh objects per MQTT 3.1.1 PUBACK.

    A 3.1.1 PUBACK is just a packet id; paho builds a ``ReasonCode`` and a
    ``Properties`` for each anyway, which was most of the cost of an ack (one per
    delta). Those get shared read-only instances; MQTT 5 goes to paho's own.
    """
    if protocol == MQTTProtocolVersion.MQTTv5 or len(packet) != 2:
        result: _packet.PubackPacket = ORIGINAL_PUBACK(header, packet, protocol)
        return result
    return _packet.PubackPacket(mid=int.from_bytes(packet, "big"), reason=PUBACK_OK,
                                properties=PUBACK_NO_PROPERTIES)


def install() -> bool:
    """Use :func:`decode_publish` and :func:`decode_puback` in every paho client of
    this process (idempotent).

    Returns False, leaving paho alone, on a paho other than the one it mirrors.
    """
    if _packet.decode_publish is decode_publish:
        return True
    if not paho.mqtt.__version__.startswith("2.2."):
        log.info("paho %s: keeping its own PUBLISH decoder", paho.mqtt.__version__)
        return False
    _packet.decode_publish = decode_publish
    _packet.decode_puback = decode_puback
    return True

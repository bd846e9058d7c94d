"""MQTT topic layout: ``<prefix>/v1/<task>/...`` and validation of ids in it.

Device ids and task names become topic levels, so they are restricted to
characters that are safe in every broker and ACL pattern: letters, digits,
``.``, ``_`` and ``-``, starting with a letter or digit, at most 64 chars.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from fedmq.errors import ConfigError

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PREFIX_LEVEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# canonical decimal chunk index (ASCII only: str.isdigit() also accepts "²", which int() refuses)
_INDEX = re.compile(r"0|[1-9][0-9]{0,5}")
MAX_CHUNK_INDEX = 999_999
TOPIC_VERSION = "v1"


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid device id or task name, else raise ConfigError."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-64 of [A-Za-z0-9._-], starting alphanumeric"
        )
    return value


class TopicKind(StrEnum):
    MODEL = "model"
    META = "meta"
    CHUNK = "chunk"
    DELTA = "delta"
    ACK = "ack"
    STATUS = "status"
    AGGREGATOR_STATUS = "aggregator_status"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: TopicKind
    device: str | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Topics:
    """All topics of one task under one prefix."""

    task: str
    prefix: str = "fedmq"

    def __post_init__(self) -> None:
        validate_id(self.task, "task")
        levels = self.prefix.split("/")
        if not all(_PREFIX_LEVEL.fullmatch(level) for level in levels):
            raise ConfigError(f"invalid topic prefix {self.prefix!r}")

    @property
    def base(self) -> str:
        return f"{self.prefix}/{TOPIC_VERSION}/{self.task}"

    @property
    def model(self) -> str:
        return f"{self.base}/model"

    @property
    def meta(self) -> str:
        return f"{self.base}/model/meta"

    def chunk(self, index: int) -> str:
        if type(index) is not int or not 0 <= index <= MAX_CHUNK_INDEX:  # bool is no index
            raise ConfigError(f"chunk index must be 0..{MAX_CHUNK_INDEX}, got {index!r}")
        return f"{self.base}/model/chunk/{index}"

    @property
    def chunk_filter(self) -> str:
        return f"{self.base}/model/chunk/+"

    def delta(self, device: str) -> str:
        return f"{self.base}/delta/{validate_id(device, 'device id')}"

    @property
    def delta_filter(self) -> str:
        return f"{self.base}/delta/+"

    def ack(self, device: str) -> str:
        return f"{self.base}/ack/{validate_id(device, 'device id')}"

    def status(self, device: str) -> str:
        return f"{self.base}/status/{validate_id(device, 'device id')}"

    @property
    def status_filter(self) -> str:
        return f"{self.base}/status/+"

    @property
    def aggregator_status(self) -> str:
        return f"{self.base}/aggregator/status"

    def parse(self, topic: str) -> ParsedTopic | None:
        """Classify a topic of this task; None if it is not one of ours."""
        head = self.base + "/"
        if not topic.startswith(head):
            return None
        rest = topic[len(head) :].split("/")
        match rest:
            case ["model"]:
                return ParsedTopic(TopicKind.MODEL)
            case ["model", "meta"]:
                return ParsedTopic(TopicKind.META)
            case ["model", "chunk", idx] if _INDEX.fullmatch(idx):
                return ParsedTopic(TopicKind.CHUNK, index=int(idx))
            case ["aggregator", "status"]:
                return ParsedTopic(TopicKind.AGGREGATOR_STATUS)
            case [("delta" | "ack" | "status") as kind, device] if _ID.fullmatch(device):
                return ParsedTopic(TopicKind(kind), device=device)
        return None

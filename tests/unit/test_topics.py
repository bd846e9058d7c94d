"""The topic layout is part of the wire contract: exact strings, validated ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedmq.errors import ConfigError
from fedmq.topics import ParsedTopic, TopicKind, Topics, validate_id

IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)


def test_topic_strings_are_exactly_the_documented_ones() -> None:
    t = Topics("digits")
    assert t.model == "fedmq/v1/digits/model"
    assert t.meta == "fedmq/v1/digits/model/meta"
    assert t.chunk(0) == "fedmq/v1/digits/model/chunk/0"
    assert t.chunk(12) == "fedmq/v1/digits/model/chunk/12"
    assert t.chunk_filter == "fedmq/v1/digits/model/chunk/+"
    assert t.delta("dev-1") == "fedmq/v1/digits/delta/dev-1"
    assert t.delta_filter == "fedmq/v1/digits/delta/+"
    assert t.ack("dev-1") == "fedmq/v1/digits/ack/dev-1"
    assert t.status("dev-1") == "fedmq/v1/digits/status/dev-1"
    assert t.status_filter == "fedmq/v1/digits/status/+"
    assert t.aggregator_status == "fedmq/v1/digits/aggregator/status"
    assert Topics("digits", prefix="site/a").model == "site/a/v1/digits/model"


@pytest.mark.parametrize(
    "bad",
    ["", "-x", ".x", "a/b", "a+b", "a#", "a b", "é", "x" * 65, "$SYS", "a\x00", "a\n"],
)
def test_invalid_ids_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        validate_id(bad)
    with pytest.raises(ConfigError):
        Topics(bad)
    with pytest.raises(ConfigError):
        Topics("task").delta(bad)


def test_valid_ids_pass_and_non_strings_are_refused() -> None:
    assert validate_id("a") == "a"
    assert validate_id("Dev_01.x-y" + "z" * 54) == "Dev_01.x-y" + "z" * 54
    with pytest.raises(ConfigError):
        validate_id(7)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "a//b", "/a", "a/", "a/+", "a/#", "$SYS"])
def test_invalid_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigError):
        Topics("task", prefix=prefix)


@given(IDS, IDS, st.integers(0, 999_999))
def test_parse_inverts_every_topic(task: str, device: str, index: int) -> None:
    t = Topics(task)
    assert t.parse(t.model) == ParsedTopic(TopicKind.MODEL)
    assert t.parse(t.meta) == ParsedTopic(TopicKind.META)
    assert t.parse(t.chunk(index)) == ParsedTopic(TopicKind.CHUNK, index=index)
    assert t.parse(t.delta(device)) == ParsedTopic(TopicKind.DELTA, device=device)
    assert t.parse(t.ack(device)) == ParsedTopic(TopicKind.ACK, device=device)
    assert t.parse(t.status(device)) == ParsedTopic(TopicKind.STATUS, device=device)
    assert t.parse(t.aggregator_status) == ParsedTopic(TopicKind.AGGREGATOR_STATUS)


@pytest.mark.parametrize(
    "topic",
    [
        "fedmq/v1/other/model",
        "fedmq/v2/t/model",
        "fedmq/v1/t",
        "fedmq/v1/t/",
        "fedmq/v1/t/model/",
        "fedmq/v1/t/model/chunk/",
        "fedmq/v1/t/model/chunk/-1",
        "fedmq/v1/t/model/chunk/01",
        "fedmq/v1/t/model/chunk/1000000",
        "fedmq/v1/t/model/chunk/²",
        "fedmq/v1/t/model/chunk/\u0661",  # ARABIC-INDIC DIGIT ONE
        "fedmq/v1/t/delta/",
        "fedmq/v1/t/delta/a/b",
        "fedmq/v1/t/delta/-a",
        "fedmq/v1/t/status/" + "x" * 65,
        "fedmq/v1/t/aggregator",
        "fedmq/v1/t/unknown/x",
    ],
)
def test_parse_returns_none_for_foreign_topics(topic: str) -> None:
    assert Topics("t").parse(topic) is None


@pytest.mark.parametrize("index", [-1, 1_000_000, True, 1.0])
def test_chunk_index_is_bounded(index: object) -> None:
    with pytest.raises(ConfigError):
        Topics("t").chunk(index)  # type: ignore[arg-type]

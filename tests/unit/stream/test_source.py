"""The live source's decode step: records nobody follows are skipped without decoding."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from logriver_common.decoding import decode_event
from logriver_common.web.health import Readiness
from logriver_stream import records as records_module
from logriver_stream import source as source_module
from logriver_stream.cursor import CursorCodec
from logriver_stream.hub import Hub
from logriver_stream.settings import StreamSettings
from logriver_stream.source import KafkaSource
from tests.unit.stream.helpers import generous_budget, subscriber

Message = namedtuple("Message", "offset key value headers")
TP = TopicPartition("logs.v1", 0)


def message(offset: int, key: bytes | None, service: str) -> Message:
    value = orjson.dumps({"service": service, "message": f"m{offset}", "level": "INFO"})
    return Message(offset, key, value, [])


@pytest.fixture
def source_and_hub(monkeypatch: pytest.MonkeyPatch) -> tuple[KafkaSource, Hub]:
    # Only the decode step runs: no Kafka consumer is built.
    monkeypatch.setattr(source_module, "consumer_for", lambda settings, **_: object())
    hub = Hub(CursorCodec("t"), generous_budget())
    hub.position[0] = 0
    return KafkaSource(StreamSettings(), hub, Readiness()), hub


def test_records_of_unfollowed_services_are_not_decoded(
    source_and_hub: tuple[KafkaSource, Hub], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, hub = source_and_hub
    hub.register(subscriber(service=["api"]))
    decoded: list[int] = []

    def counting(value: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return decode_event(value, **kwargs)

    monkeypatch.setattr(records_module, "decode_event", counting)
    batch = [
        message(0, b"api", "api"),
        message(1, b"web", "web"),
        message(2, None, "web"),  # no key: decoded, then not matched
        message(3, b"api", "web"),  # forged key: decoded, matched on the body
        message(4, b"\xff", "api"),  # not UTF-8: decoded
    ]
    items = source._decode({TP: batch})
    assert [offset for _, offset, _ in items] == [0, 1, 2, 3, 4]  # every offset advances
    assert items[1][2] is None
    assert len(decoded) == 4
    kept = [r.service for _, _, r in items if r is not None]
    assert kept == ["api", "web", "web", "api"]


def test_a_wildcard_subscriber_decodes_everything(source_and_hub: tuple[KafkaSource, Hub]) -> None:
    source, hub = source_and_hub
    hub.register(subscriber())
    items = source._decode({TP: [message(0, b"web", "web"), message(1, b"db", "db")]})
    assert all(record is not None for _, _, record in items)


def test_a_run_of_unfollowed_records_advances_the_position_once(
    source_and_hub: tuple[KafkaSource, Hub],
) -> None:
    source, hub = source_and_hub
    api = subscriber(service=["api"])
    hub.register(api)
    batch = [message(i, b"web", "web") for i in range(5)]
    batch += [message(5, b"api", "api"), message(6, b"web", "web"), message(7, b"db", "db")]
    other = TopicPartition("logs.v1", 1)
    items = source._decode({TP: batch, other: [message(40, b"web", "web")]})
    assert [(p, o, r is not None) for p, o, r in items] == [
        (0, 4, False),
        (0, 5, True),
        (0, 7, False),
        (1, 40, False),
    ]
    hub.publish(items)
    assert hub.position == {0: 8, 1: 41}  # as if every record had been seen one by one
    delivered = api.take()
    assert delivered is not None
    assert [r.offset for r in delivered.records] == [5]
    assert CursorCodec("t").decode(delivered.records[0].cursor) == {0: 6}

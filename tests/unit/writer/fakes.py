"""Broker-free stand-ins for the writer's steps."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FakeRecord:
    value: bytes | None
    offset: int = 0
    partition: int = 0
    topic: str = "logs.test"
    timestamp: int = 1_763_700_000_000
    key: bytes | None = b"svc"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

"""A local webhook receiver for the alerter's notifications, and the alert set-up for a run.

The receiver is the alerter integration tests' HTTP server; this module adds
the view a scenario asserts on: notifications per kind, with repeats of one
notification (delivery is at least once) counted once by their id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.traffic import HEADERS
from tests.integration.alerter.receivers import Receiver, webhook_handler

ALERTER = "http://127.0.0.1:8003"


@dataclass
class Notifications:
    receiver: Receiver

    @classmethod
    async def start(cls) -> Notifications:
        return cls(await Receiver(webhook_handler()).start())

    async def close(self) -> None:
        await self.receiver.close()

    @property
    def url(self) -> str:
        return self.receiver.url

    def of(self, service: str) -> list[dict[str, Any]]:
        """Distinct notifications about ``service``, in arrival order."""
        seen: set[str] = set()
        found = []
        for request in self.receiver.accepted:
            key = request.headers.get("x-logriver-notification-id") or request.body.decode()
            body = request.json()
            if key in seen or body.get("service") != service:
                continue
            seen.add(key)
            found.append(body)
        return found

    def kinds(self, service: str) -> list[str]:
        return [str(body["kind"]) for body in self.of(service)]


@dataclass
class AlertSetup:
    """A webhook channel and one rule for the run, removed again afterwards."""

    channel: str
    rule_id: str

    @classmethod
    async def create(cls, name: str, url: str, rule: dict[str, Any]) -> AlertSetup:
        async with httpx.AsyncClient(base_url=ALERTER, headers=HEADERS, timeout=10) as http:
            resp = await http.put(f"/v1/channels/{name}", json={"type": "webhook", "url": url})
            assert resp.status_code in (200, 201), resp.text
            resp = await http.post("/v1/rules", json={"name": name, "channels": [name], **rule})
            assert resp.status_code == 201, resp.text
            return cls(name, str(resp.json()["id"]))

    async def delete(self) -> None:
        async with httpx.AsyncClient(base_url=ALERTER, headers=HEADERS, timeout=10) as http:
            await http.delete(f"/v1/rules/{self.rule_id}")
            await http.delete(f"/v1/channels/{self.channel}")

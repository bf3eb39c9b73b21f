"""The alerter's repositories on PostgreSQL (the Protocols are in ``repositories.py``).

Alert transitions are conditional UPDATEs in one transaction with the outbox
rows they cause: two instances evaluating the same fingerprint can both try,
only one gets the row back, and only that one has queued notifications.
Every public method raises only the domain errors of ``repositories.py``
(``@storage_errors``), never an asyncpg exception.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
import orjson

from logriver_alerter.message import AlertMessage
from logriver_alerter.migrations import MIGRATIONS
from logriver_alerter.records import AlertRow, Notification, Observation, load_json
from logriver_alerter.repositories import (
    Outbox,
    Repositories,
    Transition,
    storage_errors,
)
from logriver_alerter.rules import Channel, ChannelSpec, Rule, RuleSpec, Silence, SilenceSpec
from logriver_common.migrations import apply_migrations

# What `pool.acquire()` yields; behaves as a connection.
Conn: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _channel(row: asyncpg.Record) -> Channel:
    return Channel.model_validate({"name": row["name"], "config": load_json(row["config"])})


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(
        id=row["id"],
        alert_id=row["alert_id"],
        channel=row["channel"],
        kind=row["kind"],
        message=AlertMessage.model_validate(load_json(row["payload"])),
        attempts=row["attempts"],
    )


async def enqueue(
    conn: Conn,
    alert_id: int | None,
    outbox: Outbox,
    lease_s: float,
) -> list[Notification]:
    queued = []
    for channel, message in outbox:
        row = await conn.fetchrow(
            """
            INSERT INTO alert_notifications (alert_id, channel, kind, payload, lease_until)
            VALUES ($1, $2, $3, $4::jsonb, now() + make_interval(secs => $5))
            RETURNING *
            """,
            alert_id,
            channel,
            message.kind,
            message.model_dump_json(),
            lease_s,
        )
        assert row is not None  # noqa: S101
        queued.append(_notification(row))
    return queued


@storage_errors
class PgRules:
    """Alert rules; deleting or disabling one closes its incidents in the same call."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @staticmethod
    def _rule(row: asyncpg.Record) -> Rule:
        return Rule.model_validate(
            {
                **load_json(row["spec"]),
                "id": row["id"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
        )

    async def create(self, spec: RuleSpec) -> Rule:
        row = await self.pool.fetchrow(
            "INSERT INTO alert_rules (id, name, spec) VALUES ($1, $2, $3::jsonb) RETURNING *",
            secrets.token_hex(8),
            spec.name,
            _json(spec.model_dump(mode="json")),
        )
        assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
        return self._rule(row)

    async def replace(self, rule_id: str, spec: RuleSpec) -> Rule | None:
        row = await self.pool.fetchrow(
            """
            UPDATE alert_rules SET name = $2, spec = $3::jsonb, updated_at = now()
            WHERE id = $1 RETURNING *
            """,
            rule_id,
            spec.name,
            _json(spec.model_dump(mode="json")),
        )
        if row is not None and not spec.enabled:
            async with self.pool.acquire() as conn:
                await self._retire(conn, rule_id, "rule_disabled")
        return self._rule(row) if row is not None else None

    async def get(self, rule_id: str) -> Rule | None:
        row = await self.pool.fetchrow("SELECT * FROM alert_rules WHERE id = $1", rule_id)
        return self._rule(row) if row is not None else None

    async def list_all(self) -> list[Rule]:
        rows = await self.pool.fetch("SELECT * FROM alert_rules ORDER BY name")
        return [self._rule(r) for r in rows]

    async def delete(self, rule_id: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            result = await conn.execute("DELETE FROM alert_rules WHERE id = $1", rule_id)
            await self._retire(conn, rule_id, "rule_deleted")
        return result.endswith(" 1")

    @staticmethod
    async def _retire(conn: Conn, rule_id: str, reason: str) -> None:
        # A rule that no longer exists cannot recover: close its incidents without a message.
        await conn.execute("DELETE FROM alerts WHERE rule_id = $1 AND state = 'pending'", rule_id)
        await conn.execute(
            """
            UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_reason = $2
            WHERE rule_id = $1 AND state = 'firing'
            """,
            rule_id,
            reason,
        )

    async def names_using_channel(self, channel: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT name FROM alert_rules WHERE spec->'channels' ? $1 ORDER BY name", channel
        )
        return [r["name"] for r in rows]


@storage_errors
class PgChannels:
    """Notification channels (their configs hold secrets; ``Channel.public`` masks them)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def put(self, name: str, spec: ChannelSpec) -> tuple[Channel, bool]:
        row = await self.pool.fetchrow(
            """
            INSERT INTO alert_channels (name, config) VALUES ($1, $2::jsonb)
            ON CONFLICT (name) DO UPDATE SET config = EXCLUDED.config, updated_at = now()
            RETURNING (xmax = 0) AS created
            """,
            name,
            _json(spec.root.model_dump(mode="json")),
        )
        assert row is not None  # noqa: S101
        return Channel(name=name, config=spec.root), bool(row["created"])

    async def get(self, name: str) -> Channel | None:
        row = await self.pool.fetchrow("SELECT * FROM alert_channels WHERE name = $1", name)
        return _channel(row) if row is not None else None

    async def list_all(self) -> list[Channel]:
        rows = await self.pool.fetch("SELECT * FROM alert_channels ORDER BY name")
        return [
            Channel.model_validate({"name": r["name"], "config": load_json(r["config"])})
            for r in rows
        ]

    async def existing(self, names: list[str]) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT name FROM alert_channels WHERE name = ANY($1::text[])", names
        )
        return {r["name"] for r in rows}

    async def delete(self, name: str) -> bool:
        result = await self.pool.execute("DELETE FROM alert_channels WHERE name = $1", name)
        return result.endswith(" 1")


@storage_errors
class PgIncidents:
    """Alerts (incidents) and their transitions, each with its outbox rows."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open_pending(
        self, rule: Rule, service: str, seen: Observation, now: datetime
    ) -> AlertRow | None:
        """Start an incident; None when another instance already has one open."""
        row = await self.pool.fetchrow(
            """
            INSERT INTO alerts (rule_id, rule_name, service, severity, labels, state,
                                pending_since, value, threshold, matched, total, window_seconds,
                                peak_value, last_value, last_evaluated_at, details)
            VALUES ($1, $2, $3, $4, $5::jsonb, 'pending', $6, $7, $8, $9, $10, $11, $7, $7,
                    $6, $12::jsonb)
            ON CONFLICT (rule_id, service) WHERE state IN ('pending', 'firing') DO NOTHING
            RETURNING *
            """,
            rule.id,
            rule.name,
            service,
            rule.severity,
            _json(rule.labels),
            now,
            seen.value,
            seen.threshold,
            seen.matched,
            seen.total,
            seen.window_seconds,
            _json(seen.details),
        )
        return AlertRow.from_record(row) if row is not None else None

    async def fire(
        self,
        alert_id: int,
        seen: Observation,
        now: datetime,
        *,
        silenced: bool,
        outbox: Outbox,
        lease_s: float,
    ) -> Transition:
        """pending → firing; the winner's notifications are in the outbox, leased to it."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                UPDATE alerts SET state = 'firing', fired_at = $2, last_notified_at = $2,
                    value = $3, matched = $4, total = $5, peak_value = greatest(peak_value, $3),
                    last_value = $3, last_evaluated_at = $2, silenced = $6, details = $7::jsonb
                WHERE id = $1 AND state = 'pending' RETURNING *
                """,
                alert_id,
                now,
                seen.value,
                seen.matched,
                seen.total,
                silenced,
                _json(seen.details),
            )
            if row is None:
                return None
            alert = AlertRow.from_record(row)
            queued = [] if silenced else await enqueue(conn, alert.id, outbox, lease_s)
        return alert, queued

    async def resolve(
        self,
        alert_id: int,
        seen: Observation,
        now: datetime,
        *,
        outbox: Outbox,
        lease_s: float,
    ) -> Transition:
        """firing → resolved; notifies only if the firing was notified (not silenced)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                UPDATE alerts SET state = 'resolved', resolved_at = $2,
                    resolved_reason = 'recovered', last_value = $3, last_evaluated_at = $2
                WHERE id = $1 AND state = 'firing' RETURNING *
                """,
                alert_id,
                now,
                seen.value,
            )
            if row is None:
                return None
            alert = AlertRow.from_record(row)
            queued = [] if alert.silenced else await enqueue(conn, alert.id, outbox, lease_s)
        return alert, queued

    async def remind(
        self,
        alert_id: int,
        now: datetime,
        interval_s: float,
        *,
        outbox: Outbox,
        lease_s: float,
    ) -> Transition:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                UPDATE alerts SET last_notified_at = $2
                WHERE id = $1 AND state = 'firing'
                  AND last_notified_at <= $2 - make_interval(secs => $3)
                RETURNING *
                """,
                alert_id,
                now,
                interval_s,
            )
            if row is None:
                return None
            alert = AlertRow.from_record(row)
            queued = await enqueue(conn, alert.id, outbox, lease_s)
        return alert, queued

    async def cancel_pending(self, alert_id: int) -> bool:
        result = await self.pool.execute(
            "DELETE FROM alerts WHERE id = $1 AND state = 'pending'", alert_id
        )
        return result.endswith(" 1")

    async def touch(self, updates: list[tuple[int, float, datetime]]) -> None:
        """Record the latest value of active alerts (one round trip per evaluation tick)."""
        if updates:
            await self.pool.executemany(
                """
                UPDATE alerts SET last_value = $2, last_evaluated_at = $3,
                    peak_value = greatest(peak_value, $2)
                WHERE id = $1 AND state IN ('pending', 'firing')
                """,
                updates,
            )

    async def get(self, alert_id: int) -> AlertRow | None:
        row = await self.pool.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        return AlertRow.from_record(row) if row is not None else None

    async def active(self) -> list[AlertRow]:
        rows = await self.pool.fetch("SELECT * FROM alerts WHERE state IN ('pending', 'firing')")
        return [AlertRow.from_record(r) for r in rows]

    async def active_for(self, rule_id: str, service: str) -> AlertRow | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM alerts WHERE rule_id = $1 AND service = $2 "
            "AND state IN ('pending', 'firing')",
            rule_id,
            service,
        )
        return AlertRow.from_record(row) if row is not None else None

    async def search(
        self,
        *,
        states: list[str] | None,
        rule_id: str | None,
        service: str | None,
        severity: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[AlertRow]:
        rows = await self.pool.fetch(
            """
            SELECT * FROM alerts
            WHERE ($1::text[] IS NULL OR state = ANY($1::text[]))
              AND ($2::text IS NULL OR rule_id = $2)
              AND ($3::text IS NULL OR service = $3)
              AND ($4::text IS NULL OR severity = $4)
              AND ($5::timestamptz IS NULL OR coalesce(resolved_at, now()) >= $5)
              AND ($6::timestamptz IS NULL OR pending_since < $6)
              AND ($7::bigint IS NULL OR id < $7)
            ORDER BY id DESC LIMIT $8
            """,
            states,
            rule_id,
            service,
            severity,
            since,
            until,
            before_id,
            limit,
        )
        return [AlertRow.from_record(r) for r in rows]


@storage_errors
class PgDeliveries:
    """The notification outbox (leases) and the record of every attempt."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def enqueue_test(
        self, channel: str, message: AlertMessage, lease_s: float
    ) -> Notification:
        async with self.pool.acquire() as conn:
            (queued,) = await enqueue(conn, None, [(channel, message)], lease_s)
        return queued

    async def claim_orphans(self, limit: int, lease_s: float) -> list[Notification]:
        """Queued notifications whose lease ran out (their instance died or overflowed)."""
        rows = await self.pool.fetch(
            """
            UPDATE alert_notifications SET lease_until = now() + make_interval(secs => $2)
            WHERE id IN (
                SELECT id FROM alert_notifications
                WHERE state = 'queued' AND lease_until < now()
                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
            )
            RETURNING *
            """,
            limit,
            lease_s,
        )
        return [_notification(r) for r in rows]

    async def release(self, notification_id: int) -> None:
        """Hand a notification back to the sweeper (its lane was full)."""
        await self.pool.execute(
            "UPDATE alert_notifications SET lease_until = now() WHERE id = $1 AND state = 'queued'",
            notification_id,
        )

    async def record_attempt(
        self,
        notification: Notification,
        attempt: int,
        *,
        status_code: int | None,
        outcome: str,
        error: str | None,
        duration_ms: float,
        lease_s: float,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO alert_deliveries (notification_id, alert_id, channel, kind, attempt,
                                              status_code, outcome, error, duration_ms)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """,
                notification.id,
                notification.alert_id,
                notification.channel,
                notification.kind,
                attempt,
                status_code,
                outcome,
                error,
                duration_ms,
            )
            final = outcome in ("delivered", "failed")
            await conn.execute(
                """
                UPDATE alert_notifications SET attempts = $2,
                    state = CASE WHEN $3 THEN $4 ELSE state END,
                    finished_at = CASE WHEN $3 THEN now() ELSE finished_at END,
                    lease_until = now() + make_interval(secs => $5)
                WHERE id = $1
                """,
                notification.id,
                attempt,
                final,
                outcome if final else "queued",
                lease_s,
            )

    async def attempts_of(self, alert_id: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM alert_deliveries WHERE alert_id = $1 ORDER BY id", alert_id
        )
        return [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
            for r in rows
        ]


@storage_errors
class PgSilences:
    """Silences: time-bounded mutes by rule, service or labels."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @staticmethod
    def _silence(row: asyncpg.Record) -> Silence:
        return Silence.model_validate({**dict(row), "labels": load_json(row["labels"])})

    async def create(self, spec: SilenceSpec, now: datetime) -> Silence:
        row = await self.pool.fetchrow(
            """
            INSERT INTO alert_silences (id, rule_id, service, labels, starts_at, ends_at, comment)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) RETURNING *
            """,
            secrets.token_hex(8),
            spec.rule_id,
            spec.service,
            _json(spec.labels),
            spec.starts_at or now,
            spec.ends_at,
            spec.comment,
        )
        assert row is not None  # noqa: S101
        return self._silence(row)

    async def list_all(self, *, active_at: datetime | None) -> list[Silence]:
        rows = await self.pool.fetch(
            """
            SELECT * FROM alert_silences
            WHERE $1::timestamptz IS NULL OR (starts_at <= $1 AND ends_at > $1)
            ORDER BY ends_at DESC
            """,
            active_at,
        )
        return [self._silence(r) for r in rows]

    async def expire(self, silence_id: str, now: datetime) -> bool:
        result = await self.pool.execute(
            "UPDATE alert_silences SET ends_at = least(ends_at, $2) WHERE id = $1",
            silence_id,
            now,
        )
        return result.endswith(" 1")


@storage_errors
class PgProgress:
    """Consumer progress per partition, read by the rebuild."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def save(
        self, group_id: str, topic: str, progress: dict[int, tuple[int, datetime]]
    ) -> None:
        await self.pool.executemany(
            """
            INSERT INTO alerter_progress (group_id, topic, partition, next_offset, received_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (group_id, topic, partition) DO UPDATE
            SET next_offset = EXCLUDED.next_offset, received_at = EXCLUDED.received_at,
                updated_at = now()
            """,
            [(group_id, topic, p, offset, at) for p, (offset, at) in progress.items()],
        )

    async def load(self, group_id: str, topic: str) -> dict[int, tuple[int, datetime]]:
        rows = await self.pool.fetch(
            "SELECT * FROM alerter_progress WHERE group_id = $1 AND topic = $2", group_id, topic
        )
        return {r["partition"]: (r["next_offset"], r["received_at"]) for r in rows}


def postgres_repositories(pool: asyncpg.Pool) -> Repositories:
    return Repositories(
        rules=PgRules(pool),
        channels=PgChannels(pool),
        incidents=PgIncidents(pool),
        deliveries=PgDeliveries(pool),
        silences=PgSilences(pool),
        progress=PgProgress(pool),
    )


@storage_errors
class Migrator:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def migrate(self) -> list[int]:
        return await apply_migrations(self.pool, "alerter", MIGRATIONS)


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the alerter's schema migrations (StorageUnavailable if PostgreSQL fails)."""
    return await Migrator(pool).migrate()

"""The alerter's PostgreSQL schema, as versioned migrations (component ``alerter``)."""

from __future__ import annotations

from logriver_common.migrations import Migration

MIGRATIONS = [
    Migration(
        1,
        "rules, channels, alerts, notifications, deliveries, silences, progress",
        """
        CREATE TABLE alert_channels (
            name        text        PRIMARY KEY,
            config      jsonb       NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE alert_rules (
            id          text        PRIMARY KEY,
            name        text        NOT NULL UNIQUE,
            spec        jsonb       NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
        -- One row per incident of a (rule, service) fingerprint. Its state column is the
        -- single source of truth: transitions are conditional UPDATEs, and only the
        -- instance whose UPDATE returned the row enqueues the notification.
        CREATE TABLE alerts (
            id                bigserial   PRIMARY KEY,
            rule_id           text        NOT NULL,
            rule_name         text        NOT NULL,
            service           text        NOT NULL,
            severity          text        NOT NULL,
            labels            jsonb       NOT NULL DEFAULT '{}',
            state             text        NOT NULL
                              CHECK (state IN ('pending', 'firing', 'resolved')),
            pending_since     timestamptz NOT NULL,
            fired_at          timestamptz,
            resolved_at       timestamptz,
            resolved_reason   text,
            value             double precision NOT NULL,
            threshold         double precision NOT NULL,
            matched           bigint      NOT NULL,
            total             bigint      NOT NULL,
            window_seconds    integer     NOT NULL,
            peak_value        double precision NOT NULL,
            last_value        double precision,
            last_evaluated_at timestamptz,
            last_notified_at  timestamptz,
            silenced          boolean     NOT NULL DEFAULT false,
            details           jsonb       NOT NULL DEFAULT '{}'
        );
        CREATE UNIQUE INDEX alerts_one_active ON alerts (rule_id, service)
            WHERE state IN ('pending', 'firing');
        CREATE INDEX alerts_by_time ON alerts (pending_since DESC, id DESC);
        -- The outbox: written in the same transaction as the transition that caused it.
        CREATE TABLE alert_notifications (
            id           bigserial   PRIMARY KEY,
            alert_id     bigint      REFERENCES alerts (id) ON DELETE CASCADE,
            channel      text        NOT NULL,
            kind         text        NOT NULL
                         CHECK (kind IN ('firing', 'resolved', 'reminder', 'test')),
            payload      jsonb       NOT NULL,
            state        text        NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'delivered', 'failed')),
            attempts     integer     NOT NULL DEFAULT 0,
            lease_until  timestamptz,
            created_at   timestamptz NOT NULL DEFAULT now(),
            finished_at  timestamptz
        );
        CREATE INDEX alert_notifications_queued ON alert_notifications (lease_until)
            WHERE state = 'queued';
        CREATE TABLE alert_deliveries (
            id              bigserial   PRIMARY KEY,
            notification_id bigint      NOT NULL
                            REFERENCES alert_notifications (id) ON DELETE CASCADE,
            alert_id        bigint,
            channel         text        NOT NULL,
            kind            text        NOT NULL,
            attempt         integer     NOT NULL,
            status_code     integer,
            outcome         text        NOT NULL
                            CHECK (outcome IN ('delivered', 'retry', 'failed')),
            error           text,
            duration_ms     double precision NOT NULL,
            attempted_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (alert_id, id);
        CREATE TABLE alert_silences (
            id          text        PRIMARY KEY,
            rule_id     text,
            service     text,
            labels      jsonb       NOT NULL DEFAULT '{}',
            starts_at   timestamptz NOT NULL,
            ends_at     timestamptz NOT NULL,
            comment     text        NOT NULL DEFAULT '',
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        -- How far each partition was evaluated when its offset was committed; a restart
        -- uses it to tell MongoDB counts from the Kafka records it will read again.
        CREATE TABLE alerter_progress (
            group_id    text        NOT NULL,
            topic       text        NOT NULL,
            partition   integer     NOT NULL,
            next_offset bigint      NOT NULL,
            received_at timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (group_id, topic, partition)
        );
        """,
    ),
]

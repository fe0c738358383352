-- Snapshots of aggregate state, so that loading an aggregate costs the same after a thousand
-- events as after one: the newest snapshot plus the events after it (at most
-- SNAPSHOT_EVERY - 1). Written in the same transaction as the event that completes them, so a
-- snapshot never runs ahead of the log. Derived data: deleting rows here (or bumping the
-- schema version in the code) only makes the next load replay the events.

CREATE TABLE aggregate_snapshots (
    aggregate_type   text        NOT NULL,
    aggregate_id     text        NOT NULL,
    schema_version   integer     NOT NULL,
    last_sequence    bigint      NOT NULL,
    snapshot_version bigint      NOT NULL,
    state            jsonb       NOT NULL,
    taken_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

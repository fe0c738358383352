-- The event store: the source of truth and the audit log.
--
-- Global order: every insert goes through a BEFORE INSERT trigger that takes the next
-- position from the single row of event_log_head. The UPDATE of that row holds its row lock
-- until the inserting transaction ends, so appends are serialised and positions are assigned
-- in commit order without gaps: a reader that has seen position N has seen everything below N.
--
-- Tamper evidence: each row's hash chains it to the previous one (global chain):
--   hash = sha256(prev_hash || canonical text of the row), computed here when it is written.
--
-- Immutability: UPDATE, DELETE and TRUNCATE on events raise an error.

CREATE TABLE event_log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL,
    hash      bytea   NOT NULL
);
INSERT INTO event_log_head (position, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

CREATE TABLE events (
    position       bigint      PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence > 0),
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    tenant_id      text,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    prev_hash      bytea       NOT NULL,
    hash           bytea       NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE INDEX events_tenant_position ON events (tenant_id, position);
CREATE INDEX events_aggregate ON events (aggregate_id, position);

-- The canonical text of an event row, as hashed into the chain.
CREATE FUNCTION event_chain_hash(prev bytea, e events) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(prev || convert_to(concat_ws(E'\x1f',
        e.position::text, e.event_id::text, e.aggregate_type, e.aggregate_id, e.sequence::text,
        e.event_type, e.event_version, coalesce(e.tenant_id, ''), e.payload::text, e.metadata::text,
        (extract(epoch FROM e.recorded_at) * 1000000)::bigint::text), 'UTF8'))
$$;

CREATE FUNCTION events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE event_log_head SET position = position + 1
        RETURNING position, hash INTO NEW.position, NEW.prev_hash;
    NEW.recorded_at := now();
    NEW.hash := event_chain_hash(NEW.prev_hash, NEW);
    UPDATE event_log_head SET hash = NEW.hash;
    PERFORM pg_notify('tokenhub_events', NEW.position::text);
    RETURN NEW;
END
$$;

CREATE TRIGGER events_assign_position BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_before_insert();

CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_immutable_rows BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_immutable_table BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Server-wide settings that must be shared by every instance (the master key hash, the
-- key-hash pepper when none is configured).
CREATE TABLE settings (
    name       text        PRIMARY KEY,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per catch-up reader (projection or relay): the last position it has fully handled.
CREATE TABLE checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

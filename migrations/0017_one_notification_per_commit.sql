-- One wake-up per commit instead of one per event (issue 15): the insert trigger no longer
-- notifies; a deferred trigger does, at commit, with the head position then. Every event of
-- a transaction sends the same payload, and PostgreSQL delivers identical notifications of a
-- transaction once. Listeners read the position as before.

CREATE OR REPLACE FUNCTION events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_position bigint;
    head_hash     bytea;
    head_time     timestamptz;
BEGIN
    SELECT position, hash, recorded_at INTO head_position, head_hash, head_time
        FROM event_log_head FOR UPDATE;
    NEW.position := head_position + 1;
    NEW.prev_hash := head_hash;
    NEW.recorded_at := greatest(clock_timestamp(), head_time);
    NEW.hash := event_chain_hash(NEW.prev_hash, NEW);
    UPDATE event_log_head SET position = NEW.position, hash = NEW.hash, recorded_at = NEW.recorded_at;
    RETURN NEW;
END
$$;

CREATE FUNCTION events_notify_at_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokenhub_events', (SELECT position::text FROM event_log_head));
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER events_notify AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION events_notify_at_commit();

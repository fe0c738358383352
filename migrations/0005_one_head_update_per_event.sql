-- One new version of the head row per appended event instead of two: lock the row with
-- SELECT … FOR UPDATE (held to commit, so appends stay serialised in commit order), then
-- write position and hash in a single UPDATE. Same positions, same chain, half the dead
-- versions for autovacuum and for the next append to skip.

CREATE OR REPLACE FUNCTION events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_position bigint;
    head_hash     bytea;
BEGIN
    SELECT position, hash INTO head_position, head_hash FROM event_log_head FOR UPDATE;
    NEW.position := head_position + 1;
    NEW.prev_hash := head_hash;
    NEW.recorded_at := now();
    NEW.hash := event_chain_hash(NEW.prev_hash, NEW);
    UPDATE event_log_head SET position = NEW.position, hash = NEW.hash;
    PERFORM pg_notify('tokenhub_events', NEW.position::text);
    RETURN NEW;
END
$$;

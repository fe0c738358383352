-- One update of the log head per INSERT statement instead of one per event (issue 15).
--
-- The insert trigger still gives every event its position, previous hash, time and hash
-- under the `event_log_head` row lock, in row order. What changes is where the running head
-- lives during a statement: the first row of a statement reads it from `event_log_head`
-- (FOR UPDATE: the lock every appender takes, held to commit), the following rows from a
-- transaction-local setting the previous row left (`tokenhub.head`: position, hash in hex
-- and time, separated by spaces),
-- and a statement-level trigger writes it back to `event_log_head` once, clears the setting
-- and raises the wake-up notification (delivered at commit, once per statement). A failed
-- statement rolls its settings back with it. Measured: 2,000 rows in one INSERT took 207 ms
-- with an UPDATE of the head per row, the UPDATE alone 65 ms of it.

CREATE OR REPLACE FUNCTION events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    running       text := nullif(current_setting('tokenhub.head', true), '');
    head_position bigint;
    head_hash     bytea;
    head_time     timestamptz;
BEGIN
    IF running IS NULL THEN
        SELECT position, hash, recorded_at INTO head_position, head_hash, head_time
            FROM event_log_head FOR UPDATE;
    ELSE
        head_position := split_part(running, ' ', 1)::bigint;
        head_hash := decode(split_part(running, ' ', 2), 'hex');
        head_time := substr(running, length(split_part(running, ' ', 1)) + 67)::timestamptz;
    END IF;
    NEW.position := head_position + 1;
    NEW.prev_hash := head_hash;
    NEW.recorded_at := greatest(clock_timestamp(), head_time);
    NEW.hash := event_chain_hash(NEW.prev_hash, NEW);
    PERFORM set_config('tokenhub.head',
        NEW.position::text || ' ' || encode(NEW.hash, 'hex') || ' ' || NEW.recorded_at::text, true);
    RETURN NEW;
END
$$;

CREATE FUNCTION events_after_insert_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    running text := nullif(current_setting('tokenhub.head', true), '');
BEGIN
    IF running IS NOT NULL THEN
        UPDATE event_log_head SET
            position = split_part(running, ' ', 1)::bigint,
            hash = decode(split_part(running, ' ', 2), 'hex'),
            recorded_at = substr(running, length(split_part(running, ' ', 1)) + 67)::timestamptz;
        PERFORM set_config('tokenhub.head', '', true);
        PERFORM pg_notify('tokenhub_events', split_part(running, ' ', 1));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_head AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_after_insert_statement();

DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify_at_commit();

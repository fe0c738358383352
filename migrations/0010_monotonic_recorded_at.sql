-- recorded_at grows with position. It was now(), the start of the inserting transaction: a
-- transaction that began earlier but committed (and so took its position) later got an older
-- time than the event before it, and point-in-time reads that filtered on time could see an
-- event without one below it. Now the time is taken after the head lock, from the wall clock
-- (clock_timestamp()), and never below the previous event's, so time order = position order.
-- Point-in-time reads cut by position (the last position recorded at or before the moment).

ALTER TABLE event_log_head ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT '-infinity';
UPDATE event_log_head SET recorded_at = coalesce((SELECT max(recorded_at) FROM events), '-infinity');

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
    PERFORM pg_notify('tokenhub_events', NEW.position::text);
    RETURN NEW;
END
$$;
CREATE INDEX events_recorded_at ON events (recorded_at);

-- The insert trigger computes each event's chain hash in its own expression instead of calling
-- `event_chain_hash` (issue 15). That SQL function is declared IMMUTABLE but calls STABLE
-- functions (`concat_ws`), so PostgreSQL never inlines it: every event paid a full SQL-function
-- call (executor set-up included), a sixth of the writer's time in PostgreSQL under load.
-- The expression is the function's body, word for word; `event_chain_hash` stays what
-- verification recomputes, and the integration tests check both agree on every event.

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
    NEW.hash := sha256(NEW.prev_hash || convert_to(concat_ws(E'\x1f',
        NEW.position::text, NEW.event_id::text, NEW.aggregate_type, NEW.aggregate_id, NEW.sequence::text,
        NEW.event_type, NEW.event_version, coalesce(NEW.tenant_id, ''), NEW.payload::text, NEW.metadata::text,
        (extract(epoch FROM NEW.recorded_at) * 1000000)::bigint::text), 'UTF8'));
    PERFORM set_config('tokenhub.head',
        NEW.position::text || ' ' || encode(NEW.hash, 'hex') || ' ' || NEW.recorded_at::text, true);
    RETURN NEW;
END
$$;

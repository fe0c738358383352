-- Rate limits counted once for the fleet: per limit and window, how much of the budget the
-- instances have leased between them. One row per (scope, window); `lease_rate_window`
-- grants at most what is left, under the row's lock, so the instances together never admit
-- more than the limit. Rows of past windows are pruned.
CREATE TABLE rate_windows (
    scope text NOT NULL,
    window_start bigint NOT NULL,
    leased bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, window_start)
);

CREATE FUNCTION lease_rate_window(p_scope text, p_window bigint, p_want bigint, p_limit bigint,
                                  OUT granted bigint, OUT leased bigint)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rate_windows (scope, window_start, leased) VALUES (p_scope, p_window, 0)
        ON CONFLICT (scope, window_start) DO NOTHING;
    SELECT r.leased INTO leased FROM rate_windows r
        WHERE r.scope = p_scope AND r.window_start = p_window FOR UPDATE;
    granted := LEAST(GREATEST(p_want, 0), GREATEST(p_limit - leased, 0));
    leased := leased + granted;
    UPDATE rate_windows r SET leased = lease_rate_window.leased
        WHERE r.scope = p_scope AND r.window_start = p_window;
END;
$$;

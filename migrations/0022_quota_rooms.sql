-- Quotas exact across gateways. Per quota owner (a key's public id, a sub-account id or a
-- tenant id) and period, `lent` is the room the gateways hold between them: what they have
-- spent through it in the period (from the first lease, which starts it at the owner's use
-- so far) plus what each still holds unspent. `lease_quota_room` grants at most the limit
-- minus `lent`, under the row's lock, so the gateways together never reserve past the limit.
-- Each gateway's unspent part is a row of `quota_room_holders`, refreshed every half second;
-- a holder gone quiet (killed) has its unspent room given back by the next refresh of any
-- gateway. A room no gateway holds is dropped after ten quiet minutes (the next lease starts
-- it again at the owner's use then).
CREATE TABLE quota_rooms (
    owner text NOT NULL,
    period_start bigint NOT NULL,
    lent bigint NOT NULL,
    leased_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, period_start)
);

CREATE TABLE quota_room_holders (
    owner text NOT NULL,
    period_start bigint NOT NULL,
    holder text NOT NULL,
    unspent bigint NOT NULL DEFAULT 0,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, period_start, holder)
);
CREATE INDEX quota_room_holders_seen ON quota_room_holders (seen_at);

CREATE FUNCTION lease_quota_room(p_owner text, p_period bigint, p_holder text, p_want bigint,
                                 p_limit bigint, p_used bigint, OUT granted bigint, OUT lent bigint)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO quota_rooms (owner, period_start, lent) VALUES (p_owner, p_period, GREATEST(p_used, 0))
        ON CONFLICT (owner, period_start) DO NOTHING;
    SELECT r.lent INTO lent FROM quota_rooms r
        WHERE r.owner = p_owner AND r.period_start = p_period FOR UPDATE;
    granted := LEAST(GREATEST(p_want, 0), GREATEST(p_limit - lent, 0));
    lent := lent + granted;
    UPDATE quota_rooms r SET lent = lease_quota_room.lent, leased_at = now()
        WHERE r.owner = p_owner AND r.period_start = p_period;
    INSERT INTO quota_room_holders (owner, period_start, holder, unspent, seen_at)
        VALUES (p_owner, p_period, p_holder, granted, now())
        ON CONFLICT (owner, period_start, holder)
        DO UPDATE SET unspent = quota_room_holders.unspent + EXCLUDED.unspent, seen_at = now();
END;
$$;

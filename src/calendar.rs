//! UTC calendar windows, shared by quotas, resource limits and the usage rollups: a window of a
//! period starts on the minute, the hour, midnight or the first of the month (UTC), and ends
//! where the next one starts.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use tokenhub_aggregates::tenant::LimitPeriod;

/// The first day of `date`'s month.
pub fn month_start(date: Date) -> Date {
    date.replace_day(1).unwrap_or(date)
}

/// The first day of the month after `date`'s.
pub fn next_month_start(date: Date) -> Date {
    let (year, month) = (date.year(), date.month());
    let (year, month) =
        if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
    Date::from_calendar_date(year, month, 1).unwrap_or(date)
}

/// Start of the window of `period` that contains `now` (UTC).
pub fn window_start(period: LimitPeriod, now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(UtcOffset::UTC);
    let (date, hour, minute) = (now.date(), now.hour(), now.minute());
    let at = |date: Date, time: Time| PrimitiveDateTime::new(date, time).assume_utc();
    match period {
        LimitPeriod::Minute => at(date, Time::from_hms(hour, minute, 0).unwrap_or(Time::MIDNIGHT)),
        LimitPeriod::Hour => at(date, Time::from_hms(hour, 0, 0).unwrap_or(Time::MIDNIGHT)),
        LimitPeriod::Day => at(date, Time::MIDNIGHT),
        LimitPeriod::Month => at(month_start(date), Time::MIDNIGHT),
    }
}

/// End of the window of `period` that contains `now` (the start of the next one).
pub fn window_end(period: LimitPeriod, now: OffsetDateTime) -> OffsetDateTime {
    let start = window_start(period, now);
    match period {
        LimitPeriod::Minute => start + time::Duration::MINUTE,
        LimitPeriod::Hour => start + time::Duration::HOUR,
        LimitPeriod::Day => start + time::Duration::DAY,
        LimitPeriod::Month => next_month_start(start.date()).midnight().assume_utc(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn every_period_boundary_in_utc() {
        let cases = [
            (LimitPeriod::Minute, datetime!(2026-03-31 23:59:59.999 UTC), datetime!(2026-03-31 23:59 UTC)),
            (LimitPeriod::Minute, datetime!(2026-04-01 00:00 UTC), datetime!(2026-04-01 00:00 UTC)),
            (LimitPeriod::Hour, datetime!(2026-04-01 10:59:59.999 UTC), datetime!(2026-04-01 10:00 UTC)),
            (LimitPeriod::Hour, datetime!(2026-04-01 11:00 UTC), datetime!(2026-04-01 11:00 UTC)),
            (LimitPeriod::Day, datetime!(2026-04-01 23:59:59.999 UTC), datetime!(2026-04-01 00:00 UTC)),
            (LimitPeriod::Day, datetime!(2026-04-02 00:00 UTC), datetime!(2026-04-02 00:00 UTC)),
            (LimitPeriod::Month, datetime!(2026-02-28 23:59:59.999 UTC), datetime!(2026-02-01 00:00 UTC)),
            (LimitPeriod::Month, datetime!(2026-03-01 00:00 UTC), datetime!(2026-03-01 00:00 UTC)),
            (LimitPeriod::Month, datetime!(2024-02-29 12:00 UTC), datetime!(2024-02-01 00:00 UTC)),
            (LimitPeriod::Month, datetime!(2026-12-31 23:59:59.999 UTC), datetime!(2026-12-01 00:00 UTC)),
            // Not UTC: aligned on the UTC calendar anyway.
            (LimitPeriod::Day, datetime!(2026-04-02 01:30 +02:00), datetime!(2026-04-01 00:00 UTC)),
        ];
        for (period, now, start) in cases {
            assert_eq!(window_start(period, now), start, "{period:?} at {now}");
            assert!(window_end(period, now) > now, "{period:?} at {now}");
        }
        assert_eq!(
            window_end(LimitPeriod::Month, datetime!(2026-12-15 00:00 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
        assert_eq!(
            window_end(LimitPeriod::Month, datetime!(2024-02-15 00:00 UTC)),
            datetime!(2024-03-01 00:00 UTC)
        );
        assert_eq!(
            window_end(LimitPeriod::Minute, datetime!(2026-04-01 10:59:30 UTC)),
            datetime!(2026-04-01 11:00 UTC)
        );
    }
}

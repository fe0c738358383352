//! Failed sign-ins per account (`sign_in_locks`), shared by every instance: from the fifth
//! failure in an hour the account is locked, 15 s and doubling with each further failure up
//! to 15 min. The subject is the id derived from the e-mail, so an address without an account
//! is locked exactly like one with an account (nothing tells them apart).

use sqlx::PgPool;

/// Failures before the first lock.
pub const FREE_FAILURES: i32 = 4;
/// The first lock, in seconds.
pub const FIRST_LOCK_SECONDS: i64 = 15;
/// The longest lock, in seconds.
pub const MAX_LOCK_SECONDS: i64 = 900;

/// The lock earned by `failures` failures in a row, in seconds (0: none).
pub fn lock_seconds(failures: i32) -> i64 {
    if failures <= FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16) as u32;
    (FIRST_LOCK_SECONDS << doublings).min(MAX_LOCK_SECONDS)
}

/// Seconds until `subject` may try again, if it is locked.
pub async fn locked_for(pool: &PgPool, subject: &str) -> Result<Option<u64>, sqlx::Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM locked_until - now())::float8 FROM sign_in_locks \
         WHERE subject = $1 AND locked_until > now()",
    )
    .bind(subject)
    .fetch_optional(pool)
    .await?;
    Ok(seconds.map(|s| s.ceil().max(1.0) as u64))
}

/// Counts a failure of `subject` (a run of failures restarts after an hour without one) and
/// returns the lock it earned, in seconds (0: none).
pub async fn record_failure(pool: &PgPool, subject: &str) -> Result<i64, sqlx::Error> {
    let failures: i32 = sqlx::query_scalar(
        "INSERT INTO sign_in_locks AS l (subject, failures, last_failure_at) VALUES ($1, 1, now()) \
         ON CONFLICT (subject) DO UPDATE SET \
           failures = CASE WHEN l.last_failure_at < now() - interval '1 hour' THEN 1 ELSE l.failures + 1 END, \
           last_failure_at = now() \
         RETURNING failures",
    )
    .bind(subject)
    .fetch_one(pool)
    .await?;
    let lock = lock_seconds(failures);
    if lock > 0 {
        sqlx::query(
            "UPDATE sign_in_locks SET locked_until = now() + make_interval(secs => $2) WHERE subject = $1",
        )
        .bind(subject)
        .bind(lock as f64)
        .execute(pool)
        .await?;
    }
    Ok(lock)
}

/// Forgets `subject`'s failures (after a successful sign-in).
pub async fn clear(pool: &PgPool, subject: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sign_in_locks WHERE subject = $1").bind(subject).execute(pool).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_the_fifth_failure_to_a_ceiling() {
        let locks: Vec<i64> = (1..=12).map(lock_seconds).collect();
        assert_eq!(locks, [0, 0, 0, 0, 15, 30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(lock_seconds(i32::MAX), MAX_LOCK_SECONDS);
    }
}

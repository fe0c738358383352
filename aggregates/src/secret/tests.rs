//! Given/when/then tests of the secret's rules.

use cqrs_es::test::TestFramework;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn store(name: &str, version: i64) -> SecretCommand {
    SecretCommand::Store {
        tenant_id: "ten_x".into(),
        name: name.into(),
        version,
        ciphertext: "Y3Q=".into(),
        nonce: "bm9uY2U=".into(),
        dek_version: 1,
        at: T0,
    }
}

fn stored(version: i64) -> SecretEvent {
    SecretEvent::Stored {
        tenant_id: "ten_x".into(),
        name: "STRIPE_SECRET_KEY".into(),
        version,
        ciphertext: "Y3Q=".into(),
        nonce: "bm9uY2U=".into(),
        dek_version: 1,
        stored_at: T0,
    }
}

#[test]
fn store_versions_follow_each_other() {
    TestFramework::<Secret>::with(())
        .given_no_previous_events()
        .when(store("STRIPE_SECRET_KEY", 1))
        .then_expect_events(vec![stored(1)]);
    TestFramework::<Secret>::with(())
        .given(vec![stored(1)])
        .when(store("STRIPE_SECRET_KEY", 2))
        .then_expect_events(vec![stored(2)]);
    TestFramework::<Secret>::with(())
        .given(vec![stored(1)])
        .when(store("STRIPE_SECRET_KEY", 1))
        .then_expect_error(SecretError::VersionConflict);
    TestFramework::<Secret>::with(())
        .given_no_previous_events()
        .when(store("stripe-key", 1))
        .then_expect_error(SecretError::InvalidName);
}

#[test]
fn delete_and_reveal_need_a_live_secret() {
    let deleted = SecretEvent::Deleted { deleted_at: T0 };
    TestFramework::<Secret>::with(())
        .given(vec![stored(1)])
        .when(SecretCommand::Delete { at: T0 })
        .then_expect_events(vec![deleted.clone()]);
    TestFramework::<Secret>::with(())
        .given(vec![stored(1), stored(2)])
        .when(SecretCommand::RecordReveal { at: T0 })
        .then_expect_events(vec![SecretEvent::Revealed { version: 2, revealed_at: T0 }]);
    TestFramework::<Secret>::with(())
        .given(vec![stored(1), deleted.clone()])
        .when(SecretCommand::RecordReveal { at: T0 })
        .then_expect_error(SecretError::NotFound);
    TestFramework::<Secret>::with(())
        .given_no_previous_events()
        .when(SecretCommand::Delete { at: T0 })
        .then_expect_error(SecretError::NotFound);
    TestFramework::<Secret>::with(())
        .given(vec![stored(1), deleted])
        .when(store("STRIPE_SECRET_KEY", 2))
        .then_expect_events(vec![stored(2)]);
}

#[test]
fn names() {
    assert!(is_secret_name("STRIPE_SECRET_KEY") && is_secret_name("A") && is_secret_name("JIRA_API_TOKEN2"));
    assert!(
        !is_secret_name("")
            && !is_secret_name("1ABC")
            && !is_secret_name("a_b")
            && !is_secret_name(&"A".repeat(129))
    );
}

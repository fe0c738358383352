//! Given/when/then tests for every API-key command, accepted and refused.

use std::collections::BTreeMap;

use cqrs_es::test::TestFramework;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

type Framework = TestFramework<ApiKey>;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
const T1: OffsetDateTime = datetime!(2026-01-02 00:00 UTC);

fn owner() -> KeyOwner {
    KeyOwner::Tenant { tenant_id: "ten_abcdefghij0123456789".into(), sub_account_id: None }
}

fn issue(settings: KeySettings) -> ApiKeyCommand {
    ApiKeyCommand::Issue {
        public_id: "pub0123456789abc".into(),
        owner: owner(),
        role: KeyRole::Data,
        name: "ci key".into(),
        secret_hash: "h1".into(),
        settings,
        parent: None,
        at: T0,
        issuer: Issuer::Admin,
    }
}

fn issued(settings: KeySettings) -> ApiKeyEvent {
    ApiKeyEvent::Issued {
        public_id: "pub0123456789abc".into(),
        owner: owner(),
        role: KeyRole::Data,
        name: "ci key".into(),
        secret_hash: "h1".into(),
        settings,
        issued_at: T0,
    }
}

fn revoked() -> ApiKeyEvent {
    ApiKeyEvent::Revoked { reason: None, revoked_at: T1 }
}

fn disabled() -> ApiKeyEvent {
    ApiKeyEvent::Disabled { disabled_at: T1, by: DisabledBy::Admin }
}

#[test]
fn issue_normalises_settings() {
    let given = KeySettings {
        allowed_ips: vec!["10.1.2.3/8".into(), "2001:db8::1".into(), "10.0.0.0/8".into()],
        allowed_models: vec!["gpt-4o".into(), " claude ".into()],
        permissions: vec!["embeddings".into(), "chat".into()],
        tags: BTreeMap::from([("customer_id".into(), "acme-corp".into())]),
        expires_at: Some(T1),
        quota_limit: Some(1000),
        ..Default::default()
    };
    let expected = KeySettings {
        allowed_ips: vec!["10.0.0.0/8".into(), "2001:db8::1/128".into()],
        allowed_models: vec!["claude".into(), "gpt-4o".into()],
        permissions: vec!["chat".into(), "embeddings".into()],
        ..given.clone()
    };
    Framework::with(())
        .given_no_previous_events()
        .when(issue(given))
        .then_expect_events(vec![issued(expected)]);
}

#[test]
fn issue_twice_fails() {
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(issue(KeySettings::default()))
        .then_expect_error(ApiKeyError::AlreadyExists);
}

#[test]
fn issue_with_invalid_settings_fails() {
    let cases = [
        (
            KeySettings { allowed_ips: vec!["10.0.0.0/33".into()], ..Default::default() },
            ApiKeyError::InvalidCidr("10.0.0.0/33".into()),
        ),
        (
            KeySettings { allowed_ips: vec!["nope".into()], ..Default::default() },
            ApiKeyError::InvalidCidr("nope".into()),
        ),
        (KeySettings { expires_at: Some(T0), ..Default::default() }, ApiKeyError::ExpiryInPast),
        (
            KeySettings { expires_at: Some(T0 - Duration::seconds(1)), ..Default::default() },
            ApiKeyError::ExpiryInPast,
        ),
        (KeySettings { quota_limit: Some(-1), ..Default::default() }, ApiKeyError::InvalidQuota),
        (
            KeySettings {
                tags: BTreeMap::from([("tokenhub.customer_id".into(), "x".into())]),
                ..Default::default()
            },
            ApiKeyError::ReservedTagKey("tokenhub.customer_id".into()),
        ),
        (
            KeySettings { tags: BTreeMap::from([("bad key".into(), "x".into())]), ..Default::default() },
            ApiKeyError::InvalidTag("bad key".into()),
        ),
        (
            KeySettings { permissions: vec!["Chat".into()], ..Default::default() },
            ApiKeyError::InvalidListItem { field: "permissions", value: "Chat".into() },
        ),
        (
            KeySettings {
                rate_limit: Some(RateLimit { requests_per_minute: Some(0), tokens_per_minute: None }),
                ..Default::default()
            },
            ApiKeyError::InvalidRateLimit,
        ),
        (
            KeySettings { allowed_models: vec!["m".into(); 101], ..Default::default() },
            ApiKeyError::TooMany("allowed_models"),
        ),
    ];
    for (settings, error) in cases {
        Framework::with(()).given_no_previous_events().when(issue(settings)).then_expect_error(error);
    }
}

#[test]
fn issue_with_bad_name_or_mismatched_role_fails() {
    let ApiKeyCommand::Issue { public_id, owner, secret_hash, settings, parent, at, .. } =
        issue(KeySettings::default())
    else {
        unreachable!("issue() builds an Issue")
    };
    let bad_name = ApiKeyCommand::Issue {
        public_id: public_id.clone(),
        owner: owner.clone(),
        role: KeyRole::Data,
        name: "".into(),
        secret_hash: secret_hash.clone(),
        settings: settings.clone(),
        parent: parent.clone(),
        at,
        issuer: Issuer::Admin,
    };
    Framework::with(()).given_no_previous_events().when(bad_name).then_expect_error(ApiKeyError::InvalidName);
    let platform_role_on_tenant = ApiKeyCommand::Issue {
        public_id: public_id.clone(),
        owner,
        role: KeyRole::Gateway,
        name: "x".into(),
        secret_hash: secret_hash.clone(),
        settings: settings.clone(),
        parent: parent.clone(),
        at,
        issuer: Issuer::Admin,
    };
    Framework::with(())
        .given_no_previous_events()
        .when(platform_role_on_tenant)
        .then_expect_error(ApiKeyError::InvalidRole);
    let tenant_role_on_platform = ApiKeyCommand::Issue {
        public_id,
        owner: KeyOwner::Platform,
        role: KeyRole::Data,
        name: "x".into(),
        secret_hash,
        settings,
        parent,
        at,
        issuer: Issuer::Admin,
    };
    Framework::with(())
        .given_no_previous_events()
        .when(tenant_role_on_platform)
        .then_expect_error(ApiKeyError::InvalidRole);
}

#[test]
fn update_normalises_and_clears() {
    let changes = KeyChanges {
        allowed_ips: Some(vec!["192.168.1.7/24".into()]),
        expires_at: Some(None),
        quota_limit: Some(Some(5)),
        ..Default::default()
    };
    let expected = KeyChanges { allowed_ips: Some(vec!["192.168.1.0/24".into()]), ..changes.clone() };
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(ApiKeyCommand::Update { changes, parent: None, at: T1, issuer: Issuer::Admin })
        .then_expect_events(vec![ApiKeyEvent::Updated { changes: expected, updated_at: T1 }]);
}

#[test]
fn update_refusals() {
    let given = || vec![issued(KeySettings::default())];
    Framework::with(())
        .given(given())
        .when(ApiKeyCommand::Update {
            changes: KeyChanges::default(),
            parent: None,
            at: T1,
            issuer: Issuer::Admin,
        })
        .then_expect_error(ApiKeyError::EmptyUpdate);
    Framework::with(())
        .given(given())
        .when(ApiKeyCommand::Update {
            changes: KeyChanges { expires_at: Some(Some(T0)), ..Default::default() },
            parent: None,
            at: T1,
            issuer: Issuer::Admin,
        })
        .then_expect_error(ApiKeyError::ExpiryInPast);
    Framework::with(())
        .given(given())
        .when(ApiKeyCommand::Update {
            changes: KeyChanges { quota_limit: Some(Some(-5)), ..Default::default() },
            parent: None,
            at: T1,
            issuer: Issuer::Admin,
        })
        .then_expect_error(ApiKeyError::InvalidQuota);
    Framework::with(())
        .given_no_previous_events()
        .when(ApiKeyCommand::Update {
            changes: KeyChanges { name: Some("x".into()), ..Default::default() },
            parent: None,
            at: T1,
            issuer: Issuer::Admin,
        })
        .then_expect_error(ApiKeyError::NotFound);
}

#[test]
fn disable_and_enable_transitions() {
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(ApiKeyCommand::Disable { at: T1, issuer: Issuer::Admin })
        .then_expect_events(vec![disabled()]);
    Framework::with(())
        .given(vec![issued(KeySettings::default()), disabled()])
        .when(ApiKeyCommand::Disable { at: T1, issuer: Issuer::Admin })
        .then_expect_error(ApiKeyError::AlreadyDisabled);
    Framework::with(())
        .given(vec![issued(KeySettings::default()), disabled()])
        .when(ApiKeyCommand::Enable { at: T1, issuer: Issuer::Admin })
        .then_expect_events(vec![ApiKeyEvent::Enabled { enabled_at: T1 }]);
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(ApiKeyCommand::Enable { at: T1, issuer: Issuer::Admin })
        .then_expect_error(ApiKeyError::NotDisabled);
}

#[test]
fn rotate_with_grace_keeps_the_old_hash_until_the_deadline() {
    let grace = T1 + Duration::hours(1);
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(ApiKeyCommand::Rotate {
            new_secret_hash: "h2".into(),
            grace_until: Some(grace),
            at: T1,
            issuer: Issuer::Admin,
        })
        .then_expect_events(vec![ApiKeyEvent::Rotated {
            secret_hash: "h2".into(),
            previous_secret_hash: Some("h1".into()),
            previous_valid_until: Some(grace),
            rotated_at: T1,
        }]);
}

#[test]
fn rotate_without_grace_drops_the_old_hash() {
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(ApiKeyCommand::Rotate {
            new_secret_hash: "h2".into(),
            grace_until: None,
            at: T1,
            issuer: Issuer::Admin,
        })
        .then_expect_events(vec![ApiKeyEvent::Rotated {
            secret_hash: "h2".into(),
            previous_secret_hash: None,
            previous_valid_until: None,
            rotated_at: T1,
        }]);
}

#[test]
fn rotate_with_bad_grace_fails() {
    for grace in [T1, T1 - Duration::seconds(1), T1 + Duration::days(31)] {
        Framework::with(())
            .given(vec![issued(KeySettings::default())])
            .when(ApiKeyCommand::Rotate {
                new_secret_hash: "h2".into(),
                grace_until: Some(grace),
                at: T1,
                issuer: Issuer::Admin,
            })
            .then_expect_error(ApiKeyError::InvalidGracePeriod);
    }
}

#[test]
fn revoke_is_terminal() {
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(ApiKeyCommand::Revoke { reason: Some("leaked".into()), at: T1, issuer: Issuer::Admin })
        .then_expect_events(vec![ApiKeyEvent::Revoked { reason: Some("leaked".into()), revoked_at: T1 }]);
    for command in [
        ApiKeyCommand::Revoke { reason: None, at: T1, issuer: Issuer::Admin },
        ApiKeyCommand::Disable { at: T1, issuer: Issuer::Admin },
        ApiKeyCommand::Enable { at: T1, issuer: Issuer::Admin },
        ApiKeyCommand::Rotate {
            new_secret_hash: "h3".into(),
            grace_until: None,
            at: T1,
            issuer: Issuer::Admin,
        },
        ApiKeyCommand::Update {
            changes: KeyChanges { name: Some("x".into()), ..Default::default() },
            parent: None,
            at: T1,
            issuer: Issuer::Admin,
        },
    ] {
        Framework::with(())
            .given(vec![issued(KeySettings::default()), revoked()])
            .when(command)
            .then_expect_error(ApiKeyError::Revoked);
    }
}

#[test]
fn changes_round_trip_null_and_absent() {
    let json = serde_json::json!({"expires_at": null, "quota_limit": 3});
    let changes: KeyChanges = serde_json::from_value(json).unwrap_or_default();
    assert_eq!(changes.expires_at, Some(None));
    assert_eq!(changes.quota_limit, Some(Some(3)));
    assert_eq!(changes.rate_limit, None);
}

#[test]
fn a_key_never_exceeds_its_sub_account() {
    let parent =
        ParentLimits { permissions: vec!["chat".into(), "embeddings".into()], quota_limit: Some(100) };
    let with_parent = |settings: KeySettings| match issue(settings) {
        ApiKeyCommand::Issue { public_id, owner, role, name, secret_hash, settings, at, .. } => {
            ApiKeyCommand::Issue {
                public_id,
                owner,
                role,
                name,
                secret_hash,
                settings,
                parent: Some(parent.clone()),
                at,
                issuer: Issuer::Admin,
            }
        }
        other => other,
    };
    let ok = KeySettings { permissions: vec!["chat".into()], quota_limit: Some(100), ..Default::default() };
    Framework::with(())
        .given_no_previous_events()
        .when(with_parent(ok.clone()))
        .then_expect_events(vec![issued(ok)]);
    Framework::with(())
        .given_no_previous_events()
        .when(with_parent(KeySettings {
            permissions: vec!["chat".into(), "images".into()],
            ..Default::default()
        }))
        .then_expect_error(ApiKeyError::PermissionsExceedSubAccount("images".into()));
    Framework::with(())
        .given_no_previous_events()
        .when(with_parent(KeySettings { quota_limit: Some(101), ..Default::default() }))
        .then_expect_error(ApiKeyError::QuotaExceedsSubAccount { quota: 101, sub_account: 100 });
    Framework::with(())
        .given(vec![issued(KeySettings::default())])
        .when(ApiKeyCommand::Update {
            changes: KeyChanges { permissions: Some(vec!["admin".into()]), ..Default::default() },
            parent: Some(parent.clone()),
            at: T1,
            issuer: Issuer::Admin,
        })
        .then_expect_error(ApiKeyError::PermissionsExceedSubAccount("admin".into()));
}

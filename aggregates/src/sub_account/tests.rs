//! Given/when/then tests for every sub-account command and rule.

use cqrs_es::test::TestFramework;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

type Framework = TestFramework<SubAccount>;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
const T1: OffsetDateTime = datetime!(2026-01-02 00:00 UTC);

fn create(quota: Option<i64>, tenant_quota: Option<u64>, permissions: &[&str]) -> SubAccountCommand {
    SubAccountCommand::Create {
        sub_account_id: "sub_abcdefghij0123456789".into(),
        tenant_id: "ten_abcdefghij0123456789".into(),
        name: "Marketing".into(),
        role: "viewer".into(),
        quota_limit: quota,
        quota_period: None,
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        tenant_quota,
        at: T0,
    }
}

fn created() -> SubAccountEvent {
    SubAccountEvent::Created {
        sub_account_id: "sub_abcdefghij0123456789".into(),
        tenant_id: "ten_abcdefghij0123456789".into(),
        name: "Marketing".into(),
        role: "viewer".into(),
        quota_limit: Some(100),
        quota_period: None,
        permissions: vec!["chat".into(), "embeddings".into()],
        created_at: T0,
    }
}

#[test]
fn create_sorts_permissions() {
    Framework::with(())
        .given_no_previous_events()
        .when(create(Some(100), Some(1000), &["embeddings", "chat", "chat"]))
        .then_expect_events(vec![created()]);
}

#[test]
fn create_refusals() {
    let cases = [
        (create(Some(-1), None, &[]), SubAccountError::InvalidQuota),
        (
            create(Some(1001), Some(1000), &[]),
            SubAccountError::QuotaExceedsTenant { quota: 1001, tenant: 1000 },
        ),
        (create(None, None, &["Chat"]), SubAccountError::InvalidPermission("Chat".into())),
    ];
    for (command, error) in cases {
        Framework::with(()).given_no_previous_events().when(command).then_expect_error(error);
    }
    let SubAccountCommand::Create {
        sub_account_id,
        tenant_id,
        quota_limit,
        permissions,
        tenant_quota,
        at,
        ..
    } = create(None, None, &[])
    else {
        unreachable!("create() builds a Create")
    };
    let bad_role = SubAccountCommand::Create {
        sub_account_id: sub_account_id.clone(),
        tenant_id: tenant_id.clone(),
        name: "x".into(),
        role: "Admin!".into(),
        quota_limit,
        quota_period: None,
        permissions: permissions.clone(),
        tenant_quota,
        at,
    };
    Framework::with(())
        .given_no_previous_events()
        .when(bad_role)
        .then_expect_error(SubAccountError::InvalidRole);
    let bad_name = SubAccountCommand::Create {
        sub_account_id,
        tenant_id,
        name: " ".into(),
        role: "viewer".into(),
        quota_limit,
        quota_period: None,
        permissions,
        tenant_quota,
        at,
    };
    Framework::with(())
        .given_no_previous_events()
        .when(bad_name)
        .then_expect_error(SubAccountError::InvalidName);
    Framework::with(())
        .given(vec![created()])
        .when(create(None, None, &[]))
        .then_expect_error(SubAccountError::AlreadyExists);
}

#[test]
fn update_checks_the_tenant_quota_and_normalises() {
    let changes = SubAccountChanges { permissions: Some(vec!["b".into(), "a".into()]), ..Default::default() };
    Framework::with(())
        .given(vec![created()])
        .when(SubAccountCommand::Update { changes, tenant_quota: None, at: T1 })
        .then_expect_events(vec![SubAccountEvent::Updated {
            changes: SubAccountChanges {
                permissions: Some(vec!["a".into(), "b".into()]),
                ..Default::default()
            },
            updated_at: T1,
        }]);
    let too_big = SubAccountChanges { quota_limit: Some(Some(5000)), ..Default::default() };
    Framework::with(())
        .given(vec![created()])
        .when(SubAccountCommand::Update { changes: too_big, tenant_quota: Some(10), at: T1 })
        .then_expect_error(SubAccountError::QuotaExceedsTenant { quota: 5000, tenant: 10 });
    Framework::with(())
        .given(vec![created()])
        .when(SubAccountCommand::Update { changes: SubAccountChanges::default(), tenant_quota: None, at: T1 })
        .then_expect_error(SubAccountError::EmptyUpdate);
    Framework::with(())
        .given_no_previous_events()
        .when(SubAccountCommand::Update {
            changes: SubAccountChanges { name: Some("x".into()), ..Default::default() },
            tenant_quota: None,
            at: T1,
        })
        .then_expect_error(SubAccountError::NotFound);
}

#[test]
fn disable_enable_delete() {
    let disabled = SubAccountEvent::Disabled { disabled_at: T1 };
    Framework::with(())
        .given(vec![created()])
        .when(SubAccountCommand::Disable { at: T1 })
        .then_expect_events(vec![disabled.clone()]);
    Framework::with(())
        .given(vec![created(), disabled.clone()])
        .when(SubAccountCommand::Disable { at: T1 })
        .then_expect_error(SubAccountError::AlreadyDisabled);
    Framework::with(())
        .given(vec![created(), disabled.clone()])
        .when(SubAccountCommand::Enable { at: T1 })
        .then_expect_events(vec![SubAccountEvent::Enabled { enabled_at: T1 }]);
    Framework::with(())
        .given(vec![created()])
        .when(SubAccountCommand::Enable { at: T1 })
        .then_expect_error(SubAccountError::NotDisabled);
    Framework::with(())
        .given(vec![created()])
        .when(SubAccountCommand::Delete { at: T1 })
        .then_expect_events(vec![SubAccountEvent::Deleted { deleted_at: T1 }]);
    for command in [
        SubAccountCommand::Delete { at: T1 },
        SubAccountCommand::Disable { at: T1 },
        SubAccountCommand::Enable { at: T1 },
    ] {
        Framework::with(())
            .given(vec![created(), SubAccountEvent::Deleted { deleted_at: T1 }])
            .when(command)
            .then_expect_error(SubAccountError::Deleted);
    }
}

//! Given/when/then tests for every role command.

use cqrs_es::test::TestFramework;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn create(name: &str, permissions: &[&str]) -> RoleCommand {
    RoleCommand::Create {
        tenant_id: "ten_x".into(),
        name: name.into(),
        description: "d".into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        at: T0,
    }
}

fn created() -> RoleEvent {
    RoleEvent::Created {
        tenant_id: "ten_x".into(),
        name: "editor".into(),
        description: "d".into(),
        permissions: vec!["read".into(), "write".into()],
        created_at: T0,
    }
}

#[test]
fn create_update_delete() {
    TestFramework::<Role>::with(())
        .given_no_previous_events()
        .when(create("editor", &["write", "read"]))
        .then_expect_events(vec![created()]);
    TestFramework::<Role>::with(())
        .given(vec![created()])
        .when(RoleCommand::Update { description: None, permissions: vec!["read".into()], at: T0 })
        .then_expect_events(vec![RoleEvent::Updated {
            description: "d".into(),
            permissions: vec!["read".into()],
            updated_at: T0,
        }]);
    TestFramework::<Role>::with(())
        .given(vec![created()])
        .when(RoleCommand::Delete { in_use: None, at: T0 })
        .then_expect_events(vec![RoleEvent::Deleted { deleted_at: T0 }]);
    TestFramework::<Role>::with(())
        .given(vec![created(), RoleEvent::Deleted { deleted_at: T0 }])
        .when(create("editor", &["write", "read"]))
        .then_expect_events(vec![created()]);
}

#[test]
fn refusals() {
    TestFramework::<Role>::with(())
        .given(vec![created()])
        .when(create("editor", &[]))
        .then_expect_error(RoleError::AlreadyExists);
    TestFramework::<Role>::with(())
        .given_no_previous_events()
        .when(create("Editor", &[]))
        .then_expect_error(RoleError::InvalidName);
    TestFramework::<Role>::with(())
        .given_no_previous_events()
        .when(create("editor", &["Bad Perm"]))
        .then_expect_error(RoleError::InvalidPermission("Bad Perm".into()));
    TestFramework::<Role>::with(())
        .given_no_previous_events()
        .when(RoleCommand::Update { description: None, permissions: vec![], at: T0 })
        .then_expect_error(RoleError::NotFound);
    TestFramework::<Role>::with(())
        .given(vec![created()])
        .when(RoleCommand::Delete { in_use: Some(RoleInUse::Default), at: T0 })
        .then_expect_error(RoleError::IsDefault);
    TestFramework::<Role>::with(())
        .given(vec![created()])
        .when(RoleCommand::Delete { in_use: Some(RoleInUse::SubAccount), at: T0 })
        .then_expect_error(RoleError::UsedBySubAccount);
    TestFramework::<Role>::with(())
        .given_no_previous_events()
        .when(RoleCommand::Delete { in_use: None, at: T0 })
        .then_expect_error(RoleError::NotFound);
}

#[test]
fn default_roles_are_viewer_and_admin() {
    let names: Vec<&str> = default_roles().iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, ["viewer", "admin"]);
}

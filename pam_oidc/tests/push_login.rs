//! Issue 16: push login (CIBA) in the module, against a scripted helperd —
//! one line shown and no prompt, the token verified like any other (it must
//! name the PAM user), each way it can end refused with its own code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use oidc_core::{DeviceFailure, IpcError, Request, Response, Secret};
use pam::constants::PamResultCode;
use pam_oidc::auth::authenticate;
use std::time::Duration;

fn ciba_setup(tag: &str) -> Setup {
    let secret = std::env::temp_dir().join(format!("pam-oidc-ciba-secret-{tag}-{}", std::process::id()));
    std::fs::write(&secret, "s\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    setup_with(tag, &format!("ciba_client_id = \"host\"\nciba_client_secret_file = \"{}\"\n", secret.display()), "")
}

fn no_session(_: &Request) -> Result<Response, IpcError> {
    Ok(Response::Claims { claims: None, detail: "no OIDC session".into() })
}

fn started(req: &Request) -> Result<Response, IpcError> {
    let Request::CibaStart { issuer, user, service, rhost, .. } = req else { panic!("{req:?}") };
    assert_eq!(
        (issuer.as_str(), user.as_str(), service.as_str(), rhost.as_str()),
        ("https://idp.test", "alice", "svc", "192.0.2.1")
    );
    Ok(Response::CibaStarted { flow_id: "F".into(), code: "X7Q2".into(), expires_in: 120 })
}

#[test]
fn a_push_login_shows_one_line_asks_nothing_and_verifies_the_token() {
    let s = ciba_setup("h-ciba");
    let token = s.token.clone();
    let script = Script::new()
        .expect("session_claims", no_session)
        .expect("ciba_start", started)
        .expect("device_wait", move |req| {
            let Request::DeviceWait { flow_id, timeout_secs } = req else { panic!("{req:?}") };
            assert_eq!((flow_id.as_str(), *timeout_secs), ("F", 100));
            Ok(Response::DeviceToken { id_token: Secret::new(token) })
        })
        .expect("login", |_| {
            Ok(Response::Admitted { detail: "uid 1".into(), login_id: "L-1".into(), groups: Some(vec!["devs".into()]) })
        });
    // No reply at all: a client that answers nothing still logs in.
    let mut p = Fake { user: "alice".into(), reply: None, ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
    assert!(p.prompts.is_empty(), "no prompt: {:?}", p.prompts);
    assert_eq!(p.infos.len(), 1, "{:?}", p.infos);
    assert!(p.infos[0].contains("bastion-1") && p.infos[0].contains("alice") && p.infos[0].contains("X7Q2"));
    let wait = script.calls.borrow()[2].1;
    assert!(wait.is_some_and(|w| w >= Duration::from_secs(100)), "{wait:?}");
}

/// The IdP approved someone else (a login_hint that maps to another
/// account): the token does not name the PAM user and is refused.
#[test]
fn an_approval_by_another_identity_does_not_log_in_this_user() {
    let s = ciba_setup("h-ciba-other");
    let script = Script::new().expect("session_claims", no_session).expect("ciba_start", |req| {
        let Request::CibaStart { user, .. } = req else { panic!() };
        assert_eq!(user, "carol");
        Ok(Response::CibaStarted { flow_id: "F".into(), code: "X7Q2".into(), expires_in: 120 })
    });
    let token = s.token.clone(); // alice's
    let script = script.expect("device_wait", move |_| Ok(Response::DeviceToken { id_token: Secret::new(token) }));
    let mut p = Fake { user: "carol".into(), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_AUTH_ERR);
    assert!(p.log.borrow().join("\n").contains("code=user-mismatch"), "{:?}", p.log);
}

/// Anyone on port 22 can type any name: a name that does not resolve here
/// (sshd would refuse it anyway) or a role account gets no push at all.
#[test]
fn no_push_for_names_that_cannot_log_in_or_role_accounts() {
    let s = setup_with_role("h-ciba-names");
    for user in ["zed", "deploy"] {
        let script = Script::new().expect("session_claims", no_session);
        let mut p = Fake { user: user.into(), ..Default::default() };
        let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
        assert_ne!(rc, PamResultCode::PAM_SUCCESS, "{user}");
        let log = p.log.borrow().join("\n");
        assert!(log.contains("code=ciba-error") && log.contains("no push for"), "{user}: {log}");
        assert!(p.infos.is_empty(), "{user}: {:?}", p.infos);
    }
}

fn setup_with_role(tag: &str) -> Setup {
    let secret = std::env::temp_dir().join(format!("pam-oidc-ciba-secret-{tag}-{}", std::process::id()));
    std::fs::write(&secret, "s\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    setup_with(
        tag,
        &format!("ciba_client_id = \"host\"\nciba_client_secret_file = \"{}\"\n", secret.display()),
        "[[role_account]]\nname = \"deploy\"\nissuer = \"https://idp.test\"\n[role_account.require]\nsub = \"s-9\"\n",
    )
}

/// The push went through one client: a token of the same issuer for another
/// of its audiences (another app's ID token) is not its answer.
#[test]
fn a_push_logins_token_must_be_for_the_ciba_client() {
    let secret = std::env::temp_dir().join(format!("pam-oidc-ciba-secret-aud-{}", std::process::id()));
    std::fs::write(&secret, "s\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let s = setup_with(
        "h-ciba-aud",
        &format!("ciba_client_id = \"push\"\nciba_client_secret_file = \"{}\"\n", secret.display()),
        "",
    );
    let text = std::fs::read_to_string(&s.config).unwrap().replace("[\"host\"]", "[\"host\", \"push\"]");
    std::fs::write(&s.config, text).unwrap();
    let token = s.token.clone(); // aud "host"
    let script = Script::new()
        .expect("session_claims", no_session)
        .expect("ciba_start", started)
        .expect("device_wait", move |_| Ok(Response::DeviceToken { id_token: Secret::new(token) }));
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
    assert_ne!(rc, PamResultCode::PAM_SUCCESS);
    assert!(p.log.borrow().join("\n").contains("for another client"), "{:?}", p.log);
}

#[test]
fn denied_unanswered_and_failed_pushes_are_refused_with_their_codes() {
    for (code, want, shown) in [
        (DeviceFailure::Denied, "code=ciba-denied", "OIDC login refused: the login was denied"),
        (DeviceFailure::Timeout, "code=ciba-timeout", "OIDC login refused: the login was not approved in time"),
        (DeviceFailure::Expired, "code=ciba-timeout", "OIDC login refused: the login was not approved in time"),
        (DeviceFailure::Error, "code=ciba-error", "OIDC login unavailable: push login failed"),
    ] {
        let s = ciba_setup(&format!("h-ciba-{}", code.as_str()));
        let script = Script::new()
            .expect("session_claims", no_session)
            .expect("ciba_start", started)
            .expect("device_wait", move |_| Ok(Response::DeviceFailed { code, reason: "IdP says".into() }));
        let mut p = Fake { user: "alice".into(), ..Default::default() };
        let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
        assert_ne!(rc, PamResultCode::PAM_SUCCESS);
        assert!(p.log.borrow().join("\n").contains(want), "{code}: {:?}", p.log);
        assert_eq!(p.errors, [shown]);
    }
    // helperd refusing to start one (a push already waiting, the cooldown).
    let s = ciba_setup("h-ciba-busy");
    let script = Script::new().expect("session_claims", no_session).expect("ciba_start", |_| {
        Ok(Response::DeviceFailed { code: DeviceFailure::Busy, reason: "cooling down".into() })
    });
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_AUTHINFO_UNAVAIL);
    assert!(p.log.borrow().join("\n").contains("code=ciba-error") && p.infos.is_empty(), "{:?}", p.log);
}

/// Number matching (`ciba_confirm_code`): the terminal never shows the
/// code; the user types the one their phone shows. The right code logs in;
/// a wrong one (an attacker at the prompt, a fatigued approval) does not,
/// and helperd is told to stop polling.
#[test]
fn with_number_matching_only_the_code_from_the_phone_logs_in() {
    for (typed, ok) in [("x7q2", true), ("ZZZZ", false)] {
        let secret = std::env::temp_dir().join(format!("pam-oidc-ciba-secret-nm-{typed}-{}", std::process::id()));
        std::fs::write(&secret, "s\n").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let s = setup_with(
            &format!("h-ciba-nm-{typed}"),
            &format!(
                "ciba_client_id = \"host\"\nciba_client_secret_file = \"{}\"\nciba_confirm_code = true\n",
                secret.display()
            ),
            "",
        );
        let token = s.token.clone();
        let mut script = Script::new().expect("session_claims", no_session).expect("ciba_start", started);
        script = if ok {
            script
                .expect("device_wait", move |_| Ok(Response::DeviceToken { id_token: Secret::new(token) }))
                .expect("login", |_| {
                    Ok(Response::Admitted { detail: "uid 1".into(), login_id: "L-1".into(), groups: Some(vec![]) })
                })
        } else {
            script.expect("device_wait", |req| {
                let Request::DeviceWait { timeout_secs, .. } = req else { panic!() };
                assert_eq!(*timeout_secs, 0, "told to stop, not waited on");
                Ok(Response::DeviceFailed { code: DeviceFailure::Abandoned, reason: "stopped".into() })
            })
        };
        let mut p = Fake { user: "alice".into(), reply: Some(typed.into()), ..Default::default() };
        let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
        assert!(p.infos.is_empty() && !p.prompts[0].contains("X7Q2"), "the code is not shown: {:?}", p.prompts);
        assert!(p.prompts[0].contains("type the code"), "{:?}", p.prompts);
        if ok {
            assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
        } else {
            assert_eq!(rc, PamResultCode::PAM_AUTH_ERR);
            let log = p.log.borrow().join("\n");
            assert!(log.contains("code=ciba-denied") && log.contains("not the push's code"), "{log}");
        }
    }
}

#[test]
fn ciba_without_a_ciba_client_or_with_device_code_is_a_config_error() {
    let s = setup_with("h-ciba-none", "", "");
    let script = Script::new();
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["ciba"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_SERVICE_ERR);
    assert!(p.log.borrow().join("\n").contains("no configured [[issuer]] has a ciba_client_id"), "{:?}", p.log);
    let s = ciba_setup("h-ciba-both");
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["ciba", "device_code"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_SERVICE_ERR);
    assert!(p.log.borrow().join("\n").contains("choose one"), "{:?}", p.log);
}

//! The hooks against a scripted helperd, in-process (no root, no socket, no
//! IdP): every call the module makes is expected in order and answered by the
//! script; a missing or extra call fails the test. These are the paths the
//! process tests reach only with a real helperd, and the ones they cannot
//! (helperd refusing, narrowing groups, answering nonsense, a device login
//! denied, AWS credentials that a role requires failing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use oidc_core::Secret;
use oidc_core::SessionClaims;
use oidc_core::{AwsStatus, DeviceFailure, IpcError, RefusalCode, Request, Response};
use pam::constants::PamResultCode;
use pam_oidc::account::acct_mgmt;
use pam_oidc::auth::authenticate;
use pam_oidc::env::{ENV_GROUPS, ENV_LOGIN_ID, ENV_USER};
use pam_oidc::session::{close_session, open_session};
use std::rc::Rc;
use std::time::Duration;

type Answer = fn(&Request) -> Result<Response, IpcError>;

fn no_session(_: &Request) -> Result<Response, IpcError> {
    Ok(Response::Claims { claims: None, detail: "no OIDC session".into() })
}

fn admitted(groups: &[&str]) -> impl FnOnce(&Request) -> Result<Response, IpcError> {
    let groups = groups.iter().map(|g| g.to_string()).collect();
    move |req| {
        let Request::Login { event: Some(ev), claims, replay_id, .. } = req else { panic!("{req:?}") };
        assert_eq!((ev.name.as_str(), ev.sub.as_str()), ("alice", "s-1"));
        assert_eq!(claims.account, "alice");
        assert!(replay_id.is_some(), "every token's use is recorded by helperd");
        Ok(Response::Admitted { detail: "uid 1073742300".into(), login_id: "L-1".into(), groups: Some(groups) })
    }
}

fn login(s: &Setup, script: &Rc<Script>, extra: &[&str]) -> (Fake, PamResultCode) {
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    let rc = authenticate(&mut p, &args(s, extra), &TestEdges::with(NOW, script));
    (p, rc)
}

#[test]
fn a_fresh_login_is_admitted_by_helperd_and_handed_on() {
    let s = setup("h-ok");
    let script = Script::new().expect("session_claims", no_session).expect("login", admitted(&["devs", "ops"]));
    let (mut p, rc) = login(&s, &script, &[]);
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
    assert_eq!((p.env[ENV_USER].as_str(), p.env[ENV_LOGIN_ID].as_str()), ("alice", "L-1"));
    // The account stage reads what auth published: no helperd call.
    assert_eq!(
        acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::with(NOW, &script)),
        PamResultCode::PAM_SUCCESS
    );
    assert_eq!(script.names(), ["session_claims", "login"]);
    assert!(!s.dir.join("replay.d").read_dir().unwrap().any(|_| true), "helperd records the use, not the module");
}

#[test]
fn policy_holds_on_the_groups_helperd_admitted() {
    // The token says ops, but helperd serves only devs on this host (ops is
    // another issuer's name here): require_group=ops must fail.
    let s = setup("h-narrow");
    let script = Script::new().expect("session_claims", no_session).expect("login", admitted(&["devs"]));
    let (p, rc) = login(&s, &script, &["require_group=ops"]);
    assert_eq!(rc, PamResultCode::PAM_AUTH_ERR);
    assert_eq!(p.errors, ["OIDC login refused: not in a group allowed on this host"]);
    assert!(p.env.is_empty(), "nothing handed on after a refusal: {:?}", p.env);
    let log = p.log.borrow().join("\n");
    assert!(log.contains("code=not-in-allowed-group") && log.contains("issuer=https://idp.test"), "{log}");
}

#[test]
fn helperd_refusals_are_the_users_answer() {
    let s = setup("h-refused");
    for (code, shown) in [
        (RefusalCode::Replayed, "OIDC login refused: this token was already used; get a new one"),
        (RefusalCode::NameTaken, "OIDC login refused: account unavailable"),
    ] {
        let script = Script::new()
            .expect("session_claims", no_session)
            .expect("login", move |_| Ok(Response::Refused { code, reason: "as helperd says".into() }));
        let (p, rc) = login(&s, &script, &[]);
        assert_eq!(rc, PamResultCode::PAM_AUTH_ERR, "{code}");
        assert_eq!(p.errors, [shown]);
    }
}

#[test]
fn a_helperd_that_answers_nonsense_is_never_worked_around() {
    // alice is in the account store, so helperd being *down* would let her in
    // on the stored account; a protocol error or an odd answer must not.
    let s = setup("h-nonsense");
    let answers: Vec<Answer> =
        vec![|_| Err(IpcError::Protocol("garbled".into())), |_| Err(IpcError::TooLarge(1 << 20)), |_| {
            Ok(Response::Pong { version: "?".into() })
        }];
    for answer in answers {
        let script = Script::new().expect("session_claims", no_session).expect("login", answer);
        let (p, rc) = login(&s, &script, &[]);
        assert_eq!(rc, PamResultCode::PAM_AUTHINFO_UNAVAIL, "{:?}", p.log);
        assert!(p.env.is_empty());
    }
    // Unreachable (connect refused): the stored account, and the use recorded locally.
    let script = Script::new()
        .expect("session_claims", no_session)
        .expect("login", |_| Err(IpcError::Connect(std::io::ErrorKind::ConnectionRefused.into())));
    let (p, rc) = login(&s, &script, &[]);
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
    assert_eq!(p.env[ENV_LOGIN_ID], "", "no stored claims without helperd");
    assert_eq!(s.dir.join("replay.d").read_dir().unwrap().count(), 1);
}

/// Issue 17: sshd and login run the module as root, and helperd lends a
/// session's claims only to a process of the session's own uid, which is never
/// 0 unless a role account (a local account) opts in to reuse: a root caller's
/// login is one helperd round trip, not two. sudo (a user's real uid) still asks.
#[test]
fn a_root_caller_does_not_ask_for_session_claims_no_session_can_lend() {
    let s = setup("h-root");
    let script = Script::new().expect("login", admitted(&["devs"]));
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &[]), &TestEdges::with(NOW, &script).root_caller());
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
    assert_eq!(script.names(), ["login"]);
    // acct_mgmt without a published login (another module authenticated): no question either.
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::with(NOW, &script).root_caller());
    assert_eq!(rc, PamResultCode::PAM_PERM_DENIED, "{:?}", p.log);
    assert!(p.log.borrow().join("\n").contains("real uid 0"), "{:?}", p.log);
    // A role account that lends its claims may be root's: then a root caller asks.
    let role = "[[role_account]]\nname = \"deploy\"\nissuer = \"https://idp.test\"\nreuse_claims = true\n\
                [role_account.require]\nsub = \"s-9\"\n";
    let s = setup_with("h-root-role", "", role);
    let script = Script::new().expect("session_claims", no_session).expect("login", admitted(&["devs"]));
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &[]), &TestEdges::with(NOW, &script).root_caller());
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
    assert_eq!(script.names(), ["session_claims", "login"]);
}

fn claims(groups: &[&str], verified_at: i64) -> SessionClaims {
    SessionClaims {
        issuer: "https://idp.test".into(),
        sub: "s-1".into(),
        account: "alice".into(),
        identity: "alice".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        idp_groups: vec![],
        jti: None,
        sid: None,
        exp: NOW + 600,
        iat: NOW - 60,
        auth_time: None,
        acr: None,
        verified_at,
        identity_id: String::new(),
    }
}

#[test]
fn sudo_in_a_session_reuses_its_claims_or_says_what_is_missing() {
    let s = setup("h-sudo");
    // The session is in ops: sudo with require_group=ops needs no token.
    let script = Script::new().expect("session_claims", |_| {
        Ok(Response::Claims { claims: Some(Box::new(claims(&["ops"], NOW - 30))), detail: "session 3".into() })
    });
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
    assert!(p.prompts.is_empty());
    assert_eq!(p.env[ENV_GROUPS], "ops");
    // Not in admins: the prompt says so (sudo hides messages), and with no
    // reply (a script without a tty) the refusal names the group.
    let script = Script::new().expect("session_claims", |_| {
        Ok(Response::Claims { claims: Some(Box::new(claims(&["ops"], NOW - 30))), detail: "session 3".into() })
    });
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["require_group=admins"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_AUTH_ERR);
    assert_eq!(p.prompts, ["OIDC token (this session is not in admins): "]);
    assert!(p.log.borrow().join("\n").contains("code=not-in-allowed-group"), "{:?}", p.log);
}

fn device_setup(tag: &str) -> Setup {
    setup_with(tag, "device_client_id = \"host\"\n", "")
}

#[test]
fn a_device_login_waits_for_helperd_and_verifies_the_token() {
    let s = device_setup("h-dev");
    let token = s.token.clone();
    let script = Script::new()
        .expect("session_claims", no_session)
        .expect("device_start", |req| {
            let Request::DeviceStart { issuer, rhost } = req else { panic!("{req:?}") };
            assert_eq!((issuer.as_str(), rhost.as_str()), ("https://idp.test", "192.0.2.1"));
            Ok(Response::DeviceStarted {
                flow_id: "F".into(),
                verification_uri: "https://idp.test/device".into(),
                verification_uri_complete: None,
                user_code: "WDJB-MJHT".into(),
                expires_in: 600,
            })
        })
        .expect("device_wait", move |req| {
            let Request::DeviceWait { flow_id, timeout_secs } = req else { panic!("{req:?}") };
            assert_eq!((flow_id.as_str(), *timeout_secs), ("F", 100));
            Ok(Response::DeviceToken { id_token: Secret::new(token) })
        })
        .expect("login", admitted(&["devs", "ops"]));
    let mut p = Fake { user: "alice".into(), reply: Some(String::new()), ..Default::default() };
    let rc = authenticate(&mut p, &args(&s, &["device_code"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{:?}", p.log);
    // The prompt names the host, the account and the remote address.
    let prompt = &p.prompts[0];
    assert!(prompt.contains("bastion-1") && prompt.contains("alice") && prompt.contains("192.0.2.1"), "{prompt}");
    assert!(prompt.contains("https://idp.test/device") && prompt.contains("WDJB-MJHT"), "{prompt}");
    // The wait outlasts the device timeout (the module's own deadline is short).
    let wait = script.calls.borrow()[2].1;
    assert!(wait.is_some_and(|w| w >= Duration::from_secs(100)), "{wait:?}");
}

#[test]
fn a_device_login_denied_or_expired_at_the_idp_is_refused_with_its_reason() {
    for (code, want, shown) in [
        (DeviceFailure::Denied, "code=device-denied", "OIDC login refused: the login was denied"),
        (DeviceFailure::Expired, "code=device-expired", "OIDC login refused: the login was not completed in time"),
        (DeviceFailure::Error, "code=device-error", "OIDC login unavailable: device login failed"),
    ] {
        let s = device_setup(&format!("h-dev-{}", code.as_str()));
        let script = Script::new()
            .expect("session_claims", no_session)
            .expect("device_start", |_| {
                Ok(Response::DeviceStarted {
                    flow_id: "F".into(),
                    verification_uri: "https://idp.test/device".into(),
                    verification_uri_complete: None,
                    user_code: "C".into(),
                    expires_in: 600,
                })
            })
            .expect("device_wait", move |_| Ok(Response::DeviceFailed { code, reason: "IdP says".into() }));
        let mut p = Fake { user: "alice".into(), reply: Some(String::new()), ..Default::default() };
        let rc = authenticate(&mut p, &args(&s, &["device_code"]), &TestEdges::with(NOW, &script));
        assert_ne!(rc, PamResultCode::PAM_SUCCESS);
        assert!(p.log.borrow().join("\n").contains(want), "{code}: {:?}", p.log);
        assert_eq!(p.errors, [shown]);
    }
}

#[test]
fn the_session_is_bound_to_the_login_and_its_aws_credentials_reported() {
    let s = setup("h-sess");
    let open = |aws: Option<AwsStatus>| {
        Script::new().expect("open_session", move |req| {
            let Request::OpenSession { login_id, pid, .. } = req else { panic!("{req:?}") };
            assert_eq!((login_id.as_str(), *pid), ("L-1", 4242));
            Ok(Response::SessionOpened { id: 7, aws })
        })
    };
    let published = || {
        let mut p = Fake { user: "alice".into(), ..Default::default() };
        p.env.insert(ENV_LOGIN_ID.into(), "L-1".into());
        p
    };
    let granted = AwsStatus { granted: true, required_failed: false, message: "role ops".into() };
    let mut p = published();
    let script = open(Some(granted));
    assert_eq!(open_session(&mut p, &args(&s, &[]), &TestEdges::with(NOW, &script)), PamResultCode::PAM_SUCCESS);
    assert!(p.env.contains_key("AWS_CONFIG_FILE"), "{:?}", p.env);
    assert_eq!(p.env[ENV_LOGIN_ID], "", "the login id is kept out of the session");
    // A role that requires credentials which could not be had fails the session.
    let failed = AwsStatus { granted: false, required_failed: true, message: "STS refused".into() };
    let mut p = published();
    let script = open(Some(failed));
    assert_eq!(open_session(&mut p, &args(&s, &[]), &TestEdges::with(NOW, &script)), PamResultCode::PAM_SESSION_ERR);
    assert_eq!(p.errors, ["STS refused"]);
    // Close: this process's session.
    let script = Script::new().expect("close_session", |req| {
        assert_eq!(req, &Request::CloseSession { pid: 4242 });
        Ok(Response::SessionClosed { closed: 1 })
    });
    let mut p = published();
    assert_eq!(close_session(&mut p, &args(&s, &[]), &TestEdges::with(NOW, &script)), PamResultCode::PAM_SUCCESS);
    assert!(p.log.borrow().join("\n").contains("session close user=alice"));
    // Not an OIDC login: no call at all.
    let script = Script::new();
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    assert_eq!(open_session(&mut p, &args(&s, &[]), &TestEdges::with(NOW, &script)), PamResultCode::PAM_IGNORE);
}

#[test]
fn without_helperd_a_session_fails_only_when_aws_credentials_are_required() {
    use pam_oidc::env::Published;
    use pam_oidc::session::decide_open;
    let s = setup("h-sess-down");
    let mut cfg = oidc_core::Config::load(&s.config).unwrap();
    let p = Published { user: "alice".into(), login_id: "L-1".into(), ..Default::default() };
    let down = || Err(IpcError::Connect(std::io::ErrorKind::ConnectionRefused.into()));
    let o = decide_open(&cfg, &p, "alice", false, down());
    assert_eq!((o.rc, o.message), (PamResultCode::PAM_SUCCESS, None));
    cfg.aws.require_credentials = true;
    let o = decide_open(&cfg, &p, "alice", false, down());
    assert_eq!(o.rc, PamResultCode::PAM_SESSION_ERR);
    assert_eq!(o.message.as_deref(), Some("AWS credentials unavailable: helperd unreachable"));
    // An odd answer is no better than none.
    let o = decide_open(&cfg, &p, "alice", false, Ok(Response::Pong { version: "x".into() }));
    assert_eq!(o.rc, PamResultCode::PAM_SESSION_ERR);
}

/// Review finding 6: a session that must end with its token (`on_expiry =
/// "end"`, the stack's `end_at_expiry`) does not open without helperd, which
/// alone could end it — neither after a login the module admitted alone nor
/// when open_session cannot reach helperd.
#[test]
fn a_session_that_must_end_with_its_token_does_not_open_without_helperd() {
    use pam_oidc::env::Published;
    use pam_oidc::session::{decide_open, open_session};
    let s = setup("h-sess-must-end");
    let cfg = oidc_core::Config::load(&s.config).unwrap();
    let p = Published { user: "alice".into(), login_id: "L-1".into(), ..Default::default() };
    let down = || Err(IpcError::Connect(std::io::ErrorKind::ConnectionRefused.into()));
    let o = decide_open(&cfg, &p, "alice", true, down());
    assert_eq!(o.rc, PamResultCode::PAM_SESSION_ERR);
    assert!(o.message.unwrap().contains("cannot be ended when its token expires"));
    // Admitted by the module alone: an OIDC identity published, no login id.
    let mut pam = Fake { user: "alice".into(), ..Default::default() };
    pam.env.insert(pam_oidc::env::ENV_USER.into(), "alice".into());
    let rc = open_session(&mut pam, &args(&s, &["end_at_expiry"]), &TestEdges::down(NOW));
    assert_eq!(rc, PamResultCode::PAM_SESSION_ERR, "{:?}", pam.log.borrow());
    let rc = open_session(&mut pam, &args(&s, &[]), &TestEdges::down(NOW));
    assert_eq!(rc, PamResultCode::PAM_IGNORE, "the config keeps sessions: as before");
}

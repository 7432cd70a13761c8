//! Login decisions in-process: a fake PAM handle, a fixed clock, helperd
//! down or scripted (no C, no libpam, no root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use pam::constants::PamResultCode;
use pam_oidc::account::acct_mgmt;
use pam_oidc::auth::authenticate;
use pam_oidc::env::{ENV_GROUPS, ENV_USER};

#[test]
fn prompt_verify_and_hand_identity_to_account() {
    let s = setup("ok");
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts, ["OIDC token: "]);
    assert_eq!(p.env[ENV_USER], "alice");
    assert_eq!(p.env[ENV_GROUPS], "devs,ops");
    assert_eq!(acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    assert_eq!(
        acct_mgmt(&mut p, &args(&s, &["require_group=admins"]), &TestEdges::down(NOW)),
        PamResultCode::PAM_PERM_DENIED
    );
    let log = p.log.borrow().join("\n");
    assert!(log.contains("auth result=allow") && log.contains("rhost=192.0.2.1"), "{log}");
    assert!(!log.contains(&s.token), "token logged");
}

#[test]
fn first_pass_modes() {
    let s = setup("first");
    // try_first_pass: a password in PAM_AUTHTOK is not a JWT -> prompt.
    let mut p = Fake {
        user: "alice".into(),
        authtok: Some("hunter2".into()),
        reply: Some(s.token.clone()),
        ..Default::default()
    };
    assert_eq!(authenticate(&mut p, &args(&s, &["try_first_pass"]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts.len(), 1);
    s.forget_uses();
    // try_first_pass with a token in PAM_AUTHTOK: no prompt.
    let mut p = Fake { user: "alice".into(), authtok: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &["try_first_pass"]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    assert!(p.prompts.is_empty());
    // use_first_pass never prompts.
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(
        authenticate(&mut p, &args(&s, &["use_first_pass"]), &TestEdges::down(NOW)),
        PamResultCode::PAM_AUTH_ERR
    );
    assert!(p.prompts.is_empty());
}

#[test]
fn refusals_are_logged_and_shown_briefly() {
    let s = setup("deny");
    let mut p = Fake { user: "bob".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_AUTH_ERR);
    assert_eq!(p.errors, ["OIDC login refused: token is for another user"]);
    assert!(p.env.is_empty(), "nothing handed on after a refusal");
    // Expired: the clock is passed in.
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW + 3600)), PamResultCode::PAM_AUTH_ERR);
    assert!(p.log.borrow()[0].contains("code=expired"));
    // No helperd and an unknown issuer key: keys unavailable => AUTHINFO_UNAVAIL.
    std::fs::remove_dir_all(s.dir.join("jwks")).unwrap();
    let mut p = Fake { user: "alice".into(), reply: Some(s.token.clone()), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_AUTHINFO_UNAVAIL);
    assert_eq!(p.errors, ["OIDC login refused: issuer keys unavailable"]);
    // Account without an OIDC identity: ignored, unless a group is required.
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    assert_eq!(acct_mgmt(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_IGNORE);
    assert_eq!(
        acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::down(NOW)),
        PamResultCode::PAM_PERM_DENIED
    );
    // Account: the env names another user.
    p.env.insert(ENV_USER.into(), "mallory".into());
    assert_eq!(acct_mgmt(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_PERM_DENIED);
}

/// A helperd that answers the session-claims question with `claims`.
fn session_with(claims: oidc_core::SessionClaims) -> std::rc::Rc<Script> {
    use oidc_core::Response;
    Script::new().expect("session_claims", move |_| {
        Ok(Response::Claims { claims: Some(Box::new(claims)), detail: "session 7 (sshd pid 42)".into() })
    })
}

/// Issue 12 (13): sudo inside a session (even a background process with no
/// tty) reuses the session's claims only within pam.reuse_max_age_secs
/// (default 900 s) of the authentication, never for the token's whole life.
#[test]
fn session_claims_are_reused_only_while_fresh() {
    let s = setup("reuse");
    let claims = |auth_age: i64| oidc_core::SessionClaims {
        issuer: "https://idp.test".into(),
        sub: "s-1".into(),
        account: "alice".into(),
        identity: "alice".into(),
        groups: vec!["ops".into()],
        idp_groups: vec![],
        jti: None,
        sid: None,
        exp: NOW + 20_000,
        iat: NOW - auth_age,
        auth_time: Some(NOW - auth_age),
        acr: None,
        verified_at: 0,
        identity_id: String::new(),
    };
    for (age, ok) in [(100, true), (1000, false)] {
        let script = session_with(claims(age));
        let mut p = Fake { user: "alice".into(), ..Default::default() };
        let rc = acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::with(NOW, &script));
        let log = p.log.borrow().join("\n");
        if ok {
            assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{log}");
        } else {
            assert_eq!(rc, PamResultCode::PAM_PERM_DENIED, "{log}");
            assert!(log.contains("beyond pam.reuse_max_age_secs=900"), "{log}");
        }
    }
    // An IdP session hours old, but the login here was a minute ago: reusable.
    let mut c = claims(5000);
    c.verified_at = NOW - 60;
    let script = session_with(c);
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    let rc = acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::with(NOW, &script));
    assert_eq!(rc, PamResultCode::PAM_SUCCESS, "{}", p.log.borrow().join("\n"));
}

/// Issue 13: a local account is not the module's: no prompt, no audit line,
/// PAM_IGNORE from every hook, whatever the stack's arguments.
#[test]
fn local_accounts_are_left_to_the_other_modules() {
    let s = setup("local");
    let mut p = Fake { user: "lbob".into(), reply: Some("password\n".into()), ..Default::default() };
    assert_eq!(
        authenticate(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::down(NOW)),
        PamResultCode::PAM_IGNORE
    );
    assert_eq!(acct_mgmt(&mut p, &args(&s, &["require_group=ops"]), &TestEdges::down(NOW)), PamResultCode::PAM_IGNORE);
    // Closing a local user's session (cron, su) asks helperd nothing and logs nothing,
    // even with helperd down.
    assert_eq!(
        pam_oidc::session::close_session(&mut p, &args(&s, &[]), &TestEdges::down(NOW)),
        PamResultCode::PAM_IGNORE
    );
    assert!(p.prompts.is_empty(), "{:?}", p.prompts);
    assert!(p.log.borrow().is_empty(), "{:?}", p.log.borrow());
    // A second run in one transaction reuses the first (no second prompt).
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts.len(), 1, "{:?}", p.prompts);
    // The PAM environment is no proof: OIDC_* set there by anything else never skip the token.
    let mut p = Fake { user: "alice".into(), ..Default::default() };
    p.env.insert(ENV_USER.into(), "alice".into());
    p.env.insert("OIDC_ISSUER".into(), "https://idp.example".into());
    assert_ne!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    assert_eq!(p.prompts.len(), 1, "{:?}", p.prompts);
}

/// Issue 12 (6, review): with helperd not running, a token still logs in once
/// (a marker in state_dir/replay.d, taken in by helperd when it starts).
#[test]
fn a_token_logs_in_once_even_with_helperd_down() {
    let s = setup("once");
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_SUCCESS);
    // The use is kept as long as the token is valid: exp plus the issuer's leeway (as helperd keeps it).
    let marker = std::fs::read_dir(s.dir.join("replay.d")).unwrap().flatten().next().unwrap().path();
    let text = std::fs::read_to_string(marker).unwrap();
    assert_eq!(text.split('\t').nth(1), Some((NOW + 60 + 60).to_string().as_str()), "{text}");
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_AUTH_ERR);
    assert_eq!(p.errors, ["OIDC login refused: this token was already used; get a new one"]);
    // No place to record the use: refused rather than unchecked.
    std::fs::remove_dir_all(s.dir.join("replay.d")).unwrap();
    let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
    assert_eq!(authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW)), PamResultCode::PAM_AUTHINFO_UNAVAIL);
}

/// Issue 17: helperd records uses in `replay.log` (one appended line each);
/// with helperd down, a use it recorded there is still refused, and so is one
/// in the `replay.json` an older helperd left.
#[test]
fn a_use_helperd_recorded_in_its_log_is_refused_with_helperd_down() {
    let s = setup("once-log");
    let login = || {
        let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
        authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW))
    };
    assert_eq!(login(), PamResultCode::PAM_SUCCESS);
    // helperd takes the marker in: the use moves to its log (after another use).
    let marker = std::fs::read_dir(s.dir.join("replay.d")).unwrap().flatten().next().unwrap().path();
    let m = oidc_core::ReplayMarker::parse(&std::fs::read_to_string(&marker).unwrap()).unwrap();
    std::fs::remove_file(marker).unwrap();
    let other = oidc_core::ReplayMarker { id: "jti:other".into(), ..m.clone() };
    std::fs::write(s.dir.join("replay.log"), format!("{}{}", other.log_line(), m.log_line())).unwrap();
    assert_eq!(login(), PamResultCode::PAM_AUTH_ERR, "recorded in replay.log");
    std::fs::remove_file(s.dir.join("replay.log")).unwrap();
    let legacy = oidc_core::ReplaySaved { v: 1, seen: vec![(m.issuer.clone(), m.id.clone(), m.until)] };
    std::fs::write(s.dir.join("replay.json"), serde_json::to_vec(&legacy).unwrap()).unwrap();
    assert_eq!(login(), PamResultCode::PAM_AUTH_ERR, "recorded in a legacy replay.json");
}

/// Issue 15 (3): a lock holds with helperd down: the module reads helperd's
/// locks file itself; one it cannot read refuses rather than ignores.
#[test]
fn a_lock_holds_with_helperd_down() {
    let s = setup("locked");
    let login = || {
        let mut p = Fake { user: "alice".into(), reply: Some(format!("{}\n", s.token)), ..Default::default() };
        let code = authenticate(&mut p, &args(&s, &[]), &TestEdges::down(NOW));
        let log = p.log.borrow().join("\n");
        (code, log)
    };
    let lock = r#"{"v":1,"locks":[{"target":{"kind":"name","name":"alice"},"by":"uid 0","at":1,"reason":"left","source":"local"}]}"#;
    std::fs::write(s.dir.join("locks.json"), lock).unwrap();
    let (code, log) = login();
    assert_eq!(code, PamResultCode::PAM_AUTH_ERR, "{log}");
    assert!(log.contains("(locked)") && log.contains("name alice is locked"), "{log}");
    std::fs::write(s.dir.join("locks.json"), "{").unwrap();
    let (code, log) = login();
    assert_eq!(code, PamResultCode::PAM_AUTHINFO_UNAVAIL, "an unreadable locks file: {log}");
    std::fs::remove_file(s.dir.join("locks.json")).unwrap();
    assert_eq!(login().0, PamResultCode::PAM_SUCCESS, "unlocked");
}

/// Review finding 3b: a locked OIDC account is refused at the account stage
/// also when it logged in without a token (an ssh key put in place during a
/// session, a cron job) — by name, or by the identity holding the name.
#[test]
fn a_locked_account_is_refused_whatever_the_way_in() {
    let s = setup("locked-key");
    let acct = || {
        let mut p = Fake { user: "alice".into(), ..Default::default() };
        let rc = acct_mgmt(&mut p, &args(&s, &[]), &TestEdges::down(NOW));
        let log = p.log.borrow().join("\n");
        (rc, log)
    };
    assert_eq!(acct().0, PamResultCode::PAM_IGNORE, "not locked: the other modules decide");
    let lock = |target: &str| {
        let l =
            format!(r#"{{"v":1,"locks":[{{"target":{target},"by":"uid 0","at":1,"reason":"","source":"local"}}]}}"#);
        std::fs::write(s.dir.join("locks.json"), l).unwrap();
    };
    lock(r#"{"kind":"name","name":"alice"}"#);
    let (rc, log) = acct();
    assert_eq!(rc, PamResultCode::PAM_PERM_DENIED, "{log}");
    assert!(log.contains("(locked)"), "{log}");
    lock(r#"{"kind":"identity","issuer":"https://idp.test","sub":"s-1"}"#);
    assert_eq!(acct().0, PamResultCode::PAM_PERM_DENIED, "the identity holding the name is locked");
    std::fs::write(s.dir.join("locks.json"), "{").unwrap();
    assert_eq!(acct().0, PamResultCode::PAM_PERM_DENIED, "an unreadable locks file fails closed");
    std::fs::remove_file(s.dir.join("locks.json")).unwrap();
}

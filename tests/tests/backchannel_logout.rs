//! Issue 15 (3): OpenID Connect Back-Channel Logout ends a live sshd session.
//! The test IdP (oidc-provider, `backchannelLogout` on, `host-login`'s
//! `backchannel_logout_uri` pointing at helperd's listener) runs its own
//! logout code; forged, wrong-audience, nonce-carrying and replayed tokens
//! posted to the listener get 400 and the session lives.

use integration::sshd::{SshHost, Stacks};
use integration::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ALGS: &[&str] = &["RS256", "ES256"];

/// `helperd sessions`, as root runs it.
fn sessions(env: &Env) -> String {
    let out = std::process::Command::new(helperd_bin())
        .args(["--config".as_ref(), env.config.as_os_str(), "sessions".as_ref()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// POST a form body to the listener: (status, body).
fn post(port: u16, token: &str) -> (u16, String) {
    let body = format!("logout_token={token}");
    match ureq::post(&format!("http://127.0.0.1:{port}/backchannel-logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .config()
        .http_status_as_error(false)
        .build()
        .send(body.as_bytes())
    {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn logout_claims(idp: &Idp, sub: &str, jti: &str) -> Value {
    json!({"iss": idp.issuer(), "aud": "host-login", "iat": now(), "exp": now() + 120, "jti": jti, "sub": sub,
           "events": {"http://schemas.openid.net/event/backchannel-logout": {}}})
}

#[test]
fn an_idp_logout_ends_the_live_session_and_forged_tokens_do_not() {
    let port = free_port();
    let idp = Idp::start_with_logout_uri(&format!("http://127.0.0.1:{port}/backchannel-logout"));
    let cfg = Config::new()
        .issuer(Issuer::standard(&idp.issuer(), ALGS))
        .raw(&format!("[backchannel_logout]\nlisten = \"127.0.0.1:{port}\"\n"));
    let env = Env::new(cfg);
    env.prelogin(&["alice", "bob"], &[]);
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    let host = SshHost::start(&env, &Stacks::standard(""), "");
    let tok = env.dir.0.join("alice.token");
    std::fs::write(&tok, idp.token("host-login", "alice")).unwrap();
    let bob = env.dir.0.join("bob.token");
    std::fs::write(&bob, idp.token("host-login", "bob")).unwrap();
    std::thread::scope(|s| {
        // Two live sessions: alice's and bob's, each a shell running sleep.
        let alice = s.spawn(|| host.ssh("alice", &tok, "echo ALICE-IN; sleep 120; echo ALICE-SURVIVED"));
        let bob_session = s.spawn(|| host.ssh("bob", &bob, "echo BOB-IN; sleep 8; echo BOB-SURVIVED"));
        let t = Instant::now();
        while !(sessions(&env).contains(" alice ") && sessions(&env).contains(" bob ")) {
            assert!(t.elapsed() < Duration::from_secs(20), "no sessions: {}", sessions(&env));
            std::thread::sleep(Duration::from_millis(50));
        }
        // Attackers: each refused, nothing ends.
        let forged = {
            let t = idp.sign(json!({"alg": "RS256", "typ": "logout+jwt"}), logout_claims(&idp, "u-alice", "f-1"));
            let (head, _) = t.rsplit_once('.').unwrap();
            let other = idp.sign(json!({"alg": "RS256"}), json!({"x": 1}));
            format!("{head}.{}", other.rsplit_once('.').unwrap().1)
        };
        let mut wrong_aud = logout_claims(&idp, "u-alice", "f-2");
        wrong_aud["aud"] = json!("other-app");
        let mut nonce = logout_claims(&idp, "u-alice", "f-3");
        nonce["nonce"] = json!("n-1");
        let cases = [
            ("forged", forged, "bad-signature"),
            ("wrong-aud", idp.sign(json!({"alg": "RS256", "typ": "logout+jwt"}), wrong_aud), "audience-mismatch"),
            ("nonce", idp.sign(json!({"alg": "RS256", "typ": "logout+jwt"}), nonce), "nonce"),
            ("id-token", idp.token("host-login", "alice"), "missing-claim"),
        ];
        for (name, token, why) in cases {
            let (status, body) = post(port, &token);
            assert_eq!(status, 400, "{name}: {body}");
            assert!(body.contains("invalid_request") && body.contains(why), "{name}: {body}");
        }
        // Replayed: a valid token for a subject with no session, twice.
        let once = idp.sign(json!({"alg": "RS256", "typ": "logout+jwt"}), logout_claims(&idp, "u-carol", "r-1"));
        assert_eq!(post(port, &once).0, 200);
        let (status, body) = post(port, &once);
        assert!(status == 400 && body.contains("replayed"), "{body}");
        let listed = sessions(&env);
        assert!(listed.contains(" alice ") && listed.contains(" bob "), "{listed}");
        // The IdP logs alice out: her session ends, bob's does not.
        let t = Instant::now();
        idp.logout("alice").unwrap();
        let acked = t.elapsed();
        let out = alice.join().unwrap();
        let gone = t.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ALICE-IN") && !text.contains("ALICE-SURVIVED"), "{text}");
        eprintln!("back-channel logout: IdP acknowledged in {acked:?}, alice's ssh session gone after {gone:?}");
        assert!(gone < Duration::from_secs(10), "{gone:?}");
        let listed = sessions(&env);
        assert!(!listed.contains(" alice ") && listed.contains(" bob "), "{listed}");
        let out = bob_session.join().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("BOB-SURVIVED"), "{out:?}");
    });
    let log = std::fs::read_to_string(&h.log).unwrap();
    for needle in ["ended session(s)", "code=bad-signature", "code=audience-mismatch", "code=replayed"] {
        assert!(log.contains(needle), "no {needle:?} in helperd's log:\n{log}");
    }
}

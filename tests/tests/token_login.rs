//! Issue 2 acceptance: token login through the real pam_oidc.so (pamtester
//! under pam_wrapper), a real helperd and a real OpenID Provider.

use integration::*;
use serde_json::json;

const ALL_ALGS: &[&str] = &["RS256", "ES256", "EdDSA"];

fn setup(extra: Config, algs: &[&str]) -> (Idp, Env, Helperd) {
    let idp = Idp::start();
    let env = Env::new(extra.issuer(Issuer::standard(&idp.issuer(), algs)));
    let h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    (idp, env, h)
}

#[test]
fn accepts_rs256_es256_eddsa_tokens_from_the_idp() {
    let (idp, env, _h) = setup(Config::new(), ALL_ALGS);
    for client in ["host-login", "host-login-es", "host-login-ed"] {
        let t = idp.token(client, "alice");
        let r = env.pam("alice", &t);
        r.assert_allowed();
        let alg = match client {
            "host-login" => "RS256",
            "host-login-es" => "ES256",
            _ => "EdDSA",
        };
        let line = r.log().into_iter().find(|l| l.contains("result=allow")).unwrap().to_string();
        assert!(line.contains(&format!("alg={alg}")), "{line}");
        assert!(
            line.contains("sub=u-alice") && line.contains("service=oidc-test") && line.contains("user=alice"),
            "{line}"
        );
        assert!(!line.contains(&t[..40]), "token must never be logged");
    }
}

#[test]
fn refusals_each_with_their_logged_reason() {
    let (idp, env, _h) = setup(
        Config::new().policy("allowed_groups", ["devs"]).policy("denied_groups", ["contractors"]),
        &["RS256", "ES256"],
    );
    let n = now();
    let rs = |claims: serde_json::Value| idp.sign(json!({"alg": "RS256"}), claims);
    let base = || idp.claims("alice", "host-login");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = base();
        f(&mut c);
        c
    };
    let good = rs(base());
    env.pam("alice", &good).assert_allowed();
    // A size cap below what a pamtester conversation can carry (misc_conv reads 4 KiB).
    env.edit(|c| c.pam("max_token_bytes", 3000));

    let cases: Vec<(&str, String, &str)> = vec![
        ("expired beyond leeway", rs(with(&|c| c["exp"] = json!(n - 60))), "expired"),
        ("nbf in the future", rs(with(&|c| c["nbf"] = json!(n + 3600))), "not-yet-valid"),
        ("wrong issuer", rs(with(&|c| c["iss"] = json!("https://evil.example"))), "untrusted-issuer"),
        ("audience not accepted", idp.token("other-app", "alice"), "audience-mismatch"),
        ("alg none", format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&base().to_string())), "alg-none"),
        ("alg none with a signature part", raw_token(&json!({"alg": "none"}), &base(), b"x"), "alg-none"),
        ("alg not on the allow-list", idp.token("host-login-ed", "alice"), "alg-not-allowed"),
        (
            "unknown kid (after one refresh)",
            idp.sign(json!({"alg": "RS256", "kid": "no-such-kid"}), base()),
            "unknown-kid",
        ),
        ("missing sub", rs(with(&|c| drop(c.as_object_mut().unwrap().remove("sub")))), "missing-claim"),
        ("missing exp", rs(with(&|c| drop(c.as_object_mut().unwrap().remove("exp")))), "missing-claim"),
        ("not three parts", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0".into(), "malformed"),
        ("bad base64", format!("eyJhbGciOiJSUzI1NiJ9.%%%%.{}", b64("sig")), "bad-base64"),
        ("bad JSON", format!("{}.{}.{}", b64(r#"{"alg":"RS256"}"#), b64("{not json"), b64("sig")), "bad-json"),
        ("oversize token", format!("eyJ{}.a.b", "A".repeat(3500)), "oversize"),
        ("crit header", raw_token(&json!({"alg": "RS256", "crit": ["exp"]}), &base(), b"x"), "crit"),
    ];
    for (what, token, code) in &cases {
        let r = env.pam("alice", token);
        eprintln!("case: {what}");
        r.assert_denied(code);
        assert!(
            r.stdout.contains("OIDC login refused") || r.stderr.contains("OIDC login refused"),
            "{what}: no user message"
        );
    }

    // HS256 "signed" with the issuer's public key as the HMAC secret.
    let jwks = idp.jwks();
    let rsa = jwks["keys"].as_array().unwrap().iter().find(|k| k["kty"] == "RSA").unwrap();
    let secret = rsa.to_string();
    let hs = oidc_core::crypto::encode(
        &jsonwebtoken::Header {
            alg: jsonwebtoken::Algorithm::HS256,
            kid: rsa["kid"].as_str().map(String::from),
            ..Default::default()
        },
        &base(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    env.pam("alice", &hs).assert_denied("alg-not-allowed");

    // Tampered payload (same signature), tampered signature.
    let parts: Vec<&str> = good.split('.').collect();
    let evil = with(&|c| c["groups"] = json!(["devs", "ops-admins"]));
    env.pam("alice", &format!("{}.{}.{}", parts[0], b64(&evil.to_string()), parts[2])).assert_denied("bad-signature");
    let mut sig = parts[2].as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    env.pam("alice", &format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).unwrap()))
        .assert_denied("bad-signature");

    // Identity is not the PAM user.
    env.pam("bob", &idp.token("host-login", "alice")).assert_denied("user-mismatch");
    // Policy: not in an allowed group (carol has none), in a denied group (mallory).
    env.pam("carol", &idp.token("host-login", "carol")).assert_denied("not-in-allowed-group");
    env.pam("mallory", &idp.token("host-login", "mallory")).assert_denied("in-denied-group");
}

#[test]
fn require_group_module_argument() {
    let (idp, env, _h) = setup(Config::new(), ALL_ALGS);
    let so = module_so();
    env.pam_with(&so, "require_group=ops-admins", "alice", &idp.token("host-login", "alice")).assert_allowed();
    env.pam_with(&so, "require_group=ops-admins", "bob", &idp.token("host-login", "bob"))
        .assert_denied("not-in-allowed-group");
    // A typo in an argument is refused rather than silently dropping the restriction.
    let r = env.pam_with(&so, "require_groups=ops-admins", "alice", &idp.token("host-login", "alice"));
    r.assert_denied("config-error");
    // device_code naming an issuer that is not configured (or has no device client)
    // is a config error, not a silent fall-back to a token prompt.
    let r = env.pam_with(&so, "device_code=https://nope.example.com", "alice", &idp.token("host-login", "alice"));
    r.assert_denied("config-error");
    assert!(r.log().iter().any(|l| l.contains("device_code=https://nope.example.com")), "{:?}", r.log());
    let r = env.pam_with(&so, "device_code", "alice", &idp.token("host-login", "alice"));
    r.assert_denied("config-error");
}

#[test]
fn use_first_pass_without_authtok_refuses() {
    let (idp, env, _h) = setup(Config::new(), ALL_ALGS);
    let r = env.pam_with(&module_so(), "use_first_pass", "alice", &idp.token("host-login", "alice"));
    r.assert_denied("no-token");
}

#[test]
fn key_rotation_is_picked_up_without_restarts() {
    let (mut idp, env, h) = setup(Config::new(), ALL_ALGS);
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    idp.restart(); // new keys, new kids, same issuer
    std::thread::sleep(std::time::Duration::from_millis(1100)); // past the 1 s rate-limit window
    let r = env.pam("alice", &idp.token("host-login", "alice"));
    r.assert_allowed();
    assert!(r.stderr.contains("refresh: fetched"), "{}", r.stderr);
    assert_eq!(idp.jwks_hits(), 1, "exactly one JWKS fetch for the rotation");
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(log.contains("jwks refresh requested by uid="), "{log}");
}

#[test]
fn thousand_unknown_kids_cause_at_most_one_fetch_per_window() {
    let idp = Idp::start();
    // A long window for this test.
    let env = Env::new(
        Config::new().helperd("jwks_refresh_min_interval_secs", 3).issuer(Issuer::standard(&idp.issuer(), ALL_ALGS)),
    );
    let _h = env.start_helperd();
    env.wait_cached(&idp.issuer());
    std::thread::sleep(std::time::Duration::from_millis(3100)); // the start-up fetch's window is over
    let before = idp.jwks_hits();
    let cfg = oidc_core::Config::load(&env.config).unwrap();
    let timeout = std::time::Duration::from_millis(cfg.pam.ipc_timeout_ms);
    let start = std::time::Instant::now();
    let mut refused = 0;
    for i in 0..1000 {
        // The module's own verification path: cache, then one helperd refresh.
        let kid = format!("random-{i}-{}", now());
        let t = raw_token(&json!({"alg": "RS256", "kid": kid}), &idp.claims("alice", "host-login"), &[1u8; 256]);
        let mut refresh =
            |iss: &str| oidc_core::Helper::refresh_jwks(&oidc_core::Client::new(&cfg.helperd.socket, timeout), iss);
        let out = oidc_core::verify_token(&cfg, &t, now(), &mut refresh);
        if matches!(out.result, Err(oidc_core::Rejection::UnknownKid(_))) {
            refused += 1;
        }
    }
    let windows = start.elapsed().as_secs() / 3 + 1;
    let fetches = idp.jwks_hits() - before;
    assert_eq!(refused, 1000);
    assert!(fetches >= 1 && fetches <= windows, "{fetches} JWKS fetches in {windows} window(s)");
    // And through the real module: 20 more logins, no more fetches than windows.
    let before = idp.jwks_hits();
    let start = std::time::Instant::now();
    for i in 0..20 {
        let t = idp.sign(json!({"alg": "RS256", "kid": format!("pam-{i}")}), idp.claims("alice", "host-login"));
        env.pam("alice", &t).assert_denied("unknown-kid");
    }
    let windows = start.elapsed().as_secs() / 3 + 1;
    assert!(idp.jwks_hits() - before <= windows);
}

#[test]
fn idp_down_with_cache_keeps_working() {
    let (mut idp, env, _h) = setup(Config::new(), ALL_ALGS);
    let t = idp.token("host-login", "alice");
    idp.stop();
    env.pam("alice", &t).assert_allowed();
}

#[test]
fn idp_hanging_and_no_cache_fails_within_the_deadline() {
    // A listener that accepts and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", hole.local_addr().unwrap().port());
    let _acceptor = std::thread::spawn(move || {
        let mut held = vec![];
        for c in hole.incoming() {
            held.push(c);
        }
    });
    let env = Env::new(Config::new().issuer(Issuer::standard(&url, ALL_ALGS)));
    let _h = env.start_helperd();
    let mut claims = json!({"iss": url, "sub": "u-alice", "aud": "host-login", "exp": now() + 300, "iat": now(), "preferred_username": "alice"});
    claims["groups"] = json!([]);
    let t = raw_token(&json!({"alg": "RS256", "kid": "k1"}), &claims, &[1u8; 256]);
    let r = env.pam("alice", &t);
    r.assert_denied("keys-unavailable");
    assert!(r.stdout.contains("issuer keys unavailable") || r.stderr.contains("issuer keys unavailable"));
    // ipc_timeout_ms = 1500: the module gives up on helperd at the deadline — or
    // helperd says at once that a fetch (its own, stuck on the IdP) is under way.
    assert!(r.elapsed < std::time::Duration::from_millis(1500 + 3000), "took {:?}", r.elapsed);
    assert!(
        r.stderr.contains("did not answer before the deadline")
            || r.stderr.contains("fetch of this issuer's keys is under way"),
        "{}",
        r.stderr
    );
}

#[test]
fn helperd_stopped_or_hung_login_uses_the_cache_and_never_hangs() {
    let (idp, env, mut h) = setup(Config::new(), ALL_ALGS);
    // alice logs in once: helperd admits her to the account store.
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    // Hung helperd (SIGSTOP): a known kid and a known identity need no helperd...
    unsafe { libc::kill(h.pid() as i32, libc::SIGSTOP) };
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
    // ...an unknown kid waits at most the IPC deadline, then fails closed: the
    // keys could not be refreshed, so the user hears "issuer keys unavailable".
    let t = idp.sign(json!({"alg": "RS256", "kid": "unknown"}), idp.claims("alice", "host-login"));
    let r = env.pam("alice", &t);
    r.assert_denied("keys-unavailable");
    assert!(r.stdout.contains("issuer keys unavailable") || r.stderr.contains("issuer keys unavailable"));
    assert!(r.elapsed < std::time::Duration::from_millis(3000), "took {:?}", r.elapsed);
    // ...but a never-seen identity does: refused within the deadline.
    let r = env.pam("bob", &idp.token("host-login", "bob"));
    r.assert_denied("accounts-unavailable");
    assert!(r.elapsed < std::time::Duration::from_millis(3000), "took {:?}", r.elapsed);
    unsafe { libc::kill(h.pid() as i32, libc::SIGCONT) };
    // Stopped helperd: the cache still serves logins; unknown kids fail fast.
    h.stop();
    env.pam("alice", &idp.token("host-login-es", "alice")).assert_allowed();
    let r = env.pam("alice", &t);
    r.assert_denied("keys-unavailable");
    assert!(r.stderr.contains("helperd unreachable"), "{}", r.stderr);
}

#[test]
fn no_panic_reaches_c() {
    let (idp, env, _h) = setup(Config::new(), ALL_ALGS);
    let r = env.pam_with(&fault_module_so(), "fault=panic", "alice", &idp.token("host-login", "alice"));
    assert!(!r.ok);
    // pamtester exits normally and reports the PAM error: the panic became PAM_ABORT.
    assert!(r.stderr.contains("Critical error - immediate abort"), "{}", r.stderr);
    // The normal module does not know the test-only argument.
    env.pam_with(&module_so(), "fault=panic", "alice", &idp.token("host-login", "alice")).assert_denied("config-error");
}

#[test]
fn config_error_fails_closed_and_names_the_line() {
    let (idp, env, _h) = setup(Config::new(), ALL_ALGS);
    env.edit(|c| c.edit_issuer(0, |i| i.unset("leeway_secs").set("leeway", 5)));
    let r = env.pam("alice", &idp.token("host-login", "alice"));
    r.assert_denied("config-error");
    assert!(r.stderr.contains("key issuer.leeway: unknown field"), "{}", r.stderr);
}

#[test]
fn check_token_prints_every_check() {
    let (idp, env, _h) = setup(Config::new(), ALL_ALGS);
    let (code, out) = env.check_token(&idp.token("host-login", "alice"), &["--user", "alice"]);
    assert_eq!(code, 0, "{out}");
    for check in ["issuer", "algorithm", "key", "signature", "exp", "aud", "username", "groups", "identity", "policy"] {
        assert!(out.lines().any(|l| l.starts_with("[PASS]") && l.contains(check)), "{check} missing:\n{out}");
    }
    assert!(out.contains("RESULT: ACCEPTED"));
    let mut c = idp.claims("alice", "other-app");
    c["exp"] = json!(now() - 600);
    let (code, out) = env.check_token(&idp.sign(json!({"alg": "RS256"}), c), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] exp") && out.contains("[FAIL] aud"), "{out}");
    assert!(out.contains("RESULT: REFUSED (expired)"), "{out}");
}

/// Issue 13 (4): a second pam_oidc line in one transaction reuses the first
/// line's verified claims — but only as far as they meet its own demands
/// (require_group, step_up), never as a blanket success.
#[test]
fn a_second_line_in_one_transaction_keeps_its_own_demands() {
    let (idp, env, _h) = setup(Config::new(), ALL_ALGS);
    let two = "auth required {M}\nauth required {M} require_group=ops-admins\naccount required {M}\n";
    // bob (devs only): the first line verifies his token; the second wants ops-admins.
    env.pam_lines(two, "bob", &idp.token("host-login", "bob")).assert_denied("not-in-allowed-group");
    // alice (ops-admins): one token, one prompt, one verification.
    let r = env.pam_lines(two, "alice", &idp.token("host-login", "alice"));
    r.assert_allowed();
    assert_eq!(r.log().iter().filter(|l| l.contains("token verified")).count(), 1, "{:?}", r.log());
    // step_up on the second line: never reused; with one token on stdin, refused.
    let step = "auth required {M}\nauth required {M} step_up\naccount required {M}\n";
    env.pam_lines(step, "alice", &idp.token("host-login", "alice")).assert_denied("no-token");
}

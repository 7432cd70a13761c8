//! `helperd check-token`: what an operator runs when a login fails. Reads a
//! token on stdin and prints every check with pass/fail and the reason, using
//! exactly the module's verification path (cache, one refresh on unknown kid).

use oidc_core::check_groups;
use oidc_core::verify_token;
use oidc_core::Config;
use oidc_core::Helper as _;
use std::io::Read;
use std::time::Duration;

pub struct Opts {
    pub user: Option<String>,
    pub require_groups: Vec<String>,
    pub refresh: bool,
}

fn line(ok: bool, name: &str, detail: &str) {
    println!("[{}] {name:<10} {detail}", if ok { "PASS" } else { "FAIL" });
}

/// Exit code: 0 accepted, 1 refused.
pub fn run(cfg: &Config, o: &Opts, now: i64) -> i32 {
    let mut raw = String::new();
    if let Err(e) = std::io::stdin().take(cfg.pam.max_token_bytes as u64 * 2).read_to_string(&mut raw) {
        println!("[FAIL] input      cannot read stdin: {e}");
        return 1;
    }
    let token = raw.trim();
    let client = oidc_core::Client::for_caller(&cfg.helperd, Duration::from_millis(cfg.pam.ipc_timeout_ms));
    let mut refresh = |iss: &str| {
        if o.refresh {
            client.refresh_jwks(iss)
        } else {
            Err("refresh disabled (--no-refresh)".into())
        }
    };
    let out = verify_token(cfg, token, now, &mut refresh);
    println!("token: {} bytes, issuer {}", token.len(), out.issuer.as_deref().map_or("-".into(), oidc_core::clean));
    if out.report.checks.is_empty() {
        if let Err(e) = &out.result {
            line(false, "structure", &e.to_string());
        }
    }
    for c in &out.report.checks {
        match &c.result {
            Ok(d) => line(true, c.name, &oidc_core::clean(d)),
            Err(e) => line(false, c.name, &e.to_string()),
        }
    }
    for n in &out.notes {
        println!("note: {}", oidc_core::clean(n));
    }
    let mut verdict = out.result.clone().map(|_| ());
    if let Ok(v) = &out.result {
        for w in &v.warnings {
            println!("note: {}", oidc_core::clean(w));
        }
        // A misspelt or absent groups claim: name the claims that look like groups.
        if let Some(i) = cfg.issuer(&v.issuer) {
            if oidc_core::get_claim(&v.claims, &i.groups_claim).is_none() {
                let like: Vec<&str> = v
                    .claims
                    .iter()
                    .filter(|(k, val)| {
                        val.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|x| x.is_string()))
                            || ["groups", "roles", "realm_access", "resource_access", "cognito:groups", "wids"]
                                .contains(&k.as_str())
                    })
                    .map(|(k, _)| k.as_str())
                    .filter(|k| *k != "aud" && *k != "amr")
                    .collect();
                println!(
                    "note: groups claim `{}` absent; {}",
                    oidc_core::clean(&i.groups_claim),
                    if like.is_empty() {
                        "the token has no list claim (does the IdP emit groups for this client?)".to_string()
                    } else {
                        format!(
                            "token has {} (set groups_claim)",
                            like.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        )
                    }
                );
            }
        }
        let (host, warnings) = match cfg.issuer(&v.issuer) {
            Some(i) => oidc_core::map_groups(&v.groups, i, cfg),
            None => (vec![], vec![]),
        };
        for w in &warnings {
            println!("note: {}", oidc_core::clean(w));
        }
        let host: Vec<String> = host.into_iter().map(|h| h.name).collect();
        line(true, "host groups", &if host.is_empty() { "(none)".into() } else { host.join(",") });
        if let Some(u) = &o.user {
            match oidc_core::account_for(cfg, v, u, &host) {
                Ok(None) => line(true, "identity", &format!("{u} is the token's own name")),
                Ok(Some(how)) => line(true, "identity", &how),
                Err(e) => {
                    line(false, "identity", &e.to_string());
                    verdict = verdict.and(Err(e));
                }
            }
        }
        match check_groups(&host, &v.groups, &cfg.policy, &o.require_groups) {
            Ok(()) => line(true, "policy", "group policy satisfied"),
            Err(e) => {
                line(false, "policy", &e.to_string());
                verdict = verdict.and(Err(e));
            }
        }
    }
    match verdict {
        Ok(()) => {
            println!("RESULT: ACCEPTED");
            0
        }
        Err(e) => {
            println!("RESULT: REFUSED ({}): {e}", e.code());
            1
        }
    }
}

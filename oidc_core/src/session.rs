//! Verified claims of a live login session, as helperd holds them, and the
//! pure rules for reusing them (sudo without a prompt) and for finding the
//! session a process belongs to.

use serde::{Deserialize, Serialize};

/// The non-secret claims of a verified token, kept for the session's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The issuer's configured URL.
    pub issuer: String,
    /// The token's `sub` claim.
    pub sub: String,
    /// The account logged into (differs from `identity` for a role account).
    pub account: String,
    /// The token's login name.
    pub identity: String,
    /// Host group names (after the issuer's mapping): what policy, sudo
    /// reuse and AWS role rules compare.
    pub groups: Vec<String>,
    /// What a deny list is checked against besides `groups`: skeletons of the
    /// token's own groups ([`crate::accounts::deny_probes`]).
    #[serde(default)]
    pub idp_groups: Vec<String>,
    /// The token's `jti`, if it had one.
    pub jti: Option<String>,
    /// The token's `sid` (the IdP session), if it had one: a back-channel
    /// logout token naming it ends this session.
    #[serde(default)]
    pub sid: Option<String>,
    /// The token's `exp` (Unix seconds): reuse ends then, plus the issuer's leeway.
    pub exp: i64,
    /// The token's `iat` (Unix seconds).
    pub iat: i64,
    /// The token's `auth_time` (Unix seconds): when the user authenticated at the IdP.
    pub auth_time: Option<i64>,
    /// The token's `acr`, compared with a stack's `acr=`.
    pub acr: Option<String>,
    /// When this host verified the token (the login here).
    #[serde(default)]
    pub verified_at: i64,
    /// The value of the issuer's `identity_claim` (`sub` by default; `oid`
    /// for Entra, whose `sub` is pairwise per client): what the account store
    /// binds names to, and what an identity lock also compares.
    #[serde(default)]
    pub identity_id: String,
}

impl SessionClaims {
    /// `groups`: the host group names of the token's groups; `probes`: its deny probes.
    pub fn from_verified(
        v: &crate::verify::Verified,
        account: &str,
        groups: Vec<String>,
        probes: Vec<String>,
    ) -> SessionClaims {
        SessionClaims {
            issuer: v.issuer.clone(),
            sub: v.sub.clone(),
            account: account.to_string(),
            identity: if v.username.is_empty() { v.identity.clone() } else { v.username.clone() },
            groups,
            idp_groups: probes,
            jti: v.jti.clone(),
            sid: v.sid.clone(),
            exp: v.exp,
            iat: v.iat,
            auth_time: v.auth_time,
            acr: v.acr.clone(),
            verified_at: 0,
            identity_id: v.identity.clone(),
        }
    }

    /// Claims that only name an identity (`sub`: as the account store holds
    /// it) and an account, no token behind them: what a lock is checked
    /// against where no token is at hand.
    pub fn naming(issuer: &str, sub: &str, account: &str, identity: &str) -> SessionClaims {
        SessionClaims {
            issuer: issuer.into(),
            sub: sub.into(),
            account: account.into(),
            identity: identity.into(),
            groups: vec![],
            idp_groups: vec![],
            jti: None,
            exp: 0,
            iat: 0,
            auth_time: None,
            acr: None,
            verified_at: 0,
            identity_id: sub.into(),
            sid: None,
        }
    }

    /// When the user last authenticated at the IdP (auth_time, else iat).
    pub fn authenticated_at(&self) -> i64 {
        self.auth_time.unwrap_or(self.iat)
    }

    /// When the user last proved themselves to this host: the later of the
    /// IdP authentication and the login here (an IdP session may be hours old
    /// when the token is used).
    pub fn proven_at(&self) -> i64 {
        self.authenticated_at().max(self.verified_at)
    }
}

/// What a stack demands of claims (module arguments `require_group=`, `max_age=`, `acr=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    /// `require_group=`: host groups, any one of which suffices.
    pub groups: Vec<String>,
    /// `max_age=`: at most this many seconds since the user authenticated at the IdP.
    pub max_age: Option<u64>,
    /// `acr=`: accepted `acr` values, any one of which suffices.
    pub acr: Vec<String>,
    /// `max_age` may count from `iat` when the token has no `auth_time`
    /// (`pam.max_age_uses_iat`). Off by default: a refreshed ID token has a
    /// new `iat` but says nothing about when the person last authenticated.
    pub iat_fallback: bool,
}

/// Whether claims satisfy a demand at `now`, with the issuer's clock leeway
/// for `exp` (the verifier's rule); `Err` says why not (for the log).
pub fn satisfies(c: &SessionClaims, d: &Demand, now: i64, leeway_secs: u64) -> Result<(), String> {
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    if c.exp.saturating_add(leeway) < now {
        return Err(format!("the session's token expired {}s ago (leeway {leeway_secs}s)", now - c.exp));
    }
    if let Some(max) = d.max_age {
        if c.auth_time.is_none() && !d.iat_fallback {
            return Err(format!(
                "max_age={max} needs auth_time, which the token lacks (the IdP did not say when the user \
                 authenticated; pam.max_age_uses_iat = true counts from iat)"
            ));
        }
        let age = now.saturating_sub(c.authenticated_at());
        if age > i64::try_from(max).unwrap_or(i64::MAX) {
            return Err(format!("authenticated {age}s ago, max_age={max}"));
        }
    }
    if !d.groups.is_empty() && !c.groups.iter().any(|g| d.groups.contains(g)) {
        return Err(format!("not in {}", d.groups.join(",")));
    }
    if !d.acr.is_empty() && !c.acr.as_ref().is_some_and(|a| d.acr.contains(a)) {
        return Err(format!("acr {} not in {}", c.acr.as_deref().unwrap_or("(none)"), d.acr.join(",")));
    }
    Ok(())
}

/// A live session: the process that opened it and the account's uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// helperd's id of the session.
    pub id: u64,
    /// The uid of the account logged into.
    pub uid: u32,
    /// The PAM process that opened the session (sshd's per-connection monitor,
    /// login, ...): every process of the session descends from it.
    pub pid: i32,
    /// Its start time (clock ticks since boot) — guards against pid reuse.
    pub pid_start: u64,
    /// `PAM_TTY` at open, empty if unset.
    pub tty: String,
    /// `PAM_RHOST` at open, empty if unset.
    pub rhost: String,
    /// When the session opened (Unix seconds).
    pub opened: i64,
    /// The verified claims of the login that opened it.
    pub claims: SessionClaims,
    /// AWS role, source and credential expiry (never secrets).
    #[serde(default)]
    pub aws: Option<String>,
    /// When helperd ends the session (its token's `exp` + `[sessions] grace_secs`
    /// under `on_expiry = "end"`); `None`: it outlives its token (claim reuse
    /// and AWS credentials stop at `exp` all the same).
    #[serde(default)]
    pub ends_at: Option<i64>,
    /// The session was closed (or its opening process is gone) but processes
    /// it started still run: helperd follows them until they end, so its
    /// deadline and a lock still reach them. Gives no claims or credentials.
    #[serde(default)]
    pub detached: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(groups: &[&str], exp: i64, auth_time: Option<i64>) -> SessionClaims {
        SessionClaims {
            issuer: "i".into(),
            sub: "s".into(),
            account: "alice".into(),
            identity: "alice".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            idp_groups: vec![],
            jti: None,
            sid: None,
            exp,
            iat: 900,
            auth_time,
            acr: Some("mfa".into()),
            verified_at: 0,
            identity_id: String::new(),
        }
    }

    #[test]
    fn demands() {
        let d = Demand { groups: vec!["ops".into()], max_age: Some(300), acr: vec!["mfa".into()], iat_fallback: false };
        assert!(satisfies(&claims(&["ops"], 2000, Some(950)), &d, 1000, 0).is_ok());
        assert!(satisfies(&claims(&["ops"], 999, Some(950)), &d, 1000, 0).unwrap_err().contains("expired"));
        assert!(satisfies(&claims(&["ops"], 2000, Some(600)), &d, 1000, 0).unwrap_err().contains("max_age"));
        assert!(satisfies(&claims(&["devs"], 2000, Some(950)), &d, 1000, 0).unwrap_err().contains("not in ops"));
        let mut c = claims(&["ops"], 2000, Some(950));
        c.acr = None;
        assert!(satisfies(&c, &d, 1000, 0).is_err());
    }

    /// Issue 12 (8, 7): the verifier's leeway holds here too; a token without
    /// auth_time does not pass max_age on its iat unless configured.
    #[test]
    fn leeway_and_auth_time() {
        let d = Demand::default();
        assert!(satisfies(&claims(&["ops"], 990, None), &d, 1000, 60).is_ok(), "expired 10s ago, leeway 60s");
        assert!(satisfies(&claims(&["ops"], 930, None), &d, 1000, 60).unwrap_err().contains("expired 70s ago"));
        let m = Demand { max_age: Some(300), ..Demand::default() };
        assert!(satisfies(&claims(&["ops"], 2000, None), &m, 1000, 0).unwrap_err().contains("needs auth_time"));
        let m = Demand { iat_fallback: true, ..m };
        assert!(satisfies(&claims(&["ops"], 2000, None), &m, 1000, 0).is_ok(), "iat 900 is fresh");
    }
}

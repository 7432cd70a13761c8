//! Reusing the verified claims of the caller's live session (sudo inside an
//! OIDC login): helperd finds the session from the calling process's tree and
//! real uid, so a process of another uid cannot borrow someone's claims.

use oidc_core::{satisfies, Demand, SessionClaims};
use oidc_core::{Helper, Request, Response};

pub enum Reuse {
    /// The session's claims satisfy the demand: (claims, which session).
    Usable(Box<SessionClaims>, String),
    /// The caller is in an OIDC session whose claims do not satisfy the demand.
    Unsatisfied(String),
    /// Ditto, and the claims lack every group the stack requires (a fresh
    /// token is unlikely to help: the prompt and the refusal say so).
    LacksGroup(String),
    /// The caller is in no OIDC session (or helperd cannot say).
    NoSession(String),
}

impl Reuse {
    pub fn why(&self) -> &str {
        match self {
            Reuse::Usable(_, d) | Reuse::Unsatisfied(d) | Reuse::LacksGroup(d) | Reuse::NoSession(d) => d,
        }
    }
}

/// No session can lend its claims to a caller of real uid 0 (sshd's monitor,
/// login): helperd lends them only to a process of the session's own uid, an
/// OIDC account's uid is never 0, and a role account's (a local account, which
/// may be root's) lends them only where `reuse_claims` says so. Then the module
/// does not ask (one helperd round trip per login instead of two).
pub fn none_can_lend(cfg: &oidc_core::Config, real_uid: u32) -> Option<Reuse> {
    (real_uid == 0 && !cfg.role_accounts.iter().any(|r| r.reuse_claims))
        .then(|| Reuse::NoSession("the caller runs as real uid 0: no OIDC session lends claims to it".into()))
}

/// `leeway(issuer)`: the clock leeway of the session's issuer. Claims older
/// than `reuse_max_age` (since the user authenticated) are not reused: a
/// background process of the session (no tty, nobody at the keyboard) gets
/// root through them only in that window, as with sudo's own timestamp.
pub fn session_claims(
    client: &dyn Helper,
    user: &str,
    demand: &Demand,
    now: i64,
    leeway: &dyn Fn(&str) -> u64,
    reuse_max_age: u64,
) -> Reuse {
    match client.call(&Request::SessionClaims) {
        Ok(Response::Claims { claims: Some(c), detail }) => {
            if c.account != user {
                return Reuse::NoSession(format!("{detail} is for {}, not {user}", c.account));
            }
            let age = now.saturating_sub(c.proven_at());
            if age > i64::try_from(reuse_max_age).unwrap_or(i64::MAX) {
                return Reuse::Unsatisfied(format!(
                    "{detail}: logged in {age}s ago, beyond pam.reuse_max_age_secs={reuse_max_age}"
                ));
            }
            match satisfies(&c, demand, now, leeway(&c.issuer)) {
                Ok(()) => Reuse::Usable(c, detail),
                Err(why) if !demand.groups.is_empty() && !demand.groups.iter().any(|g| c.groups.contains(g)) => {
                    Reuse::LacksGroup(format!("{detail}: {why}"))
                }
                Err(why) => Reuse::Unsatisfied(format!("{detail}: {why}")),
            }
        }
        Ok(Response::Claims { claims: None, detail }) => Reuse::NoSession(detail),
        Ok(other) => Reuse::NoSession(format!("helperd: {other:?}")),
        Err(e) => Reuse::NoSession(e.to_string()),
    }
}

/// The clock leeway of an issuer (0 for one no longer configured).
pub fn leeway_of(cfg: &oidc_core::Config) -> impl Fn(&str) -> u64 + '_ {
    move |iss| cfg.leeway(iss)
}

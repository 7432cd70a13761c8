//! Reusing the verified claims of the caller's live session (sudo inside an
//! OIDC login): helperd finds the session from the calling process's tree and
//! real uid, so a process of another uid cannot borrow someone's claims.

use oidc_core::ipc::{Client, Request, Response};
use oidc_core::session::{satisfies, Demand, SessionClaims};

/// `Ok((claims, which session))`, or why the session's claims cannot be used.
pub fn session_claims(
    client: &Client,
    user: &str,
    demand: &Demand,
    now: i64,
) -> Result<(SessionClaims, String), String> {
    match client.call(&Request::SessionClaims) {
        Ok(Response::Claims { claims: Some(c), detail }) => {
            if c.account != user {
                return Err(format!("{detail} is for {}, not {user}", c.account));
            }
            satisfies(&c, demand, now).map_err(|why| format!("{detail}: {why}"))?;
            Ok((*c, detail))
        }
        Ok(Response::Claims { claims: None, detail }) => Err(detail),
        Ok(other) => Err(format!("helperd: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

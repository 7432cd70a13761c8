//! Session credentials: for each login session whose groups map to a role,
//! helperd obtains short-lived AWS credentials (instance role → AssumeRole, or
//! AssumeRoleWithWebIdentity with the user's token), serves them only to the
//! session's processes of its uid (and root), renews them before they expire
//! while the session lives, and forgets them when it ends. Never logged.

pub(crate) mod imds;
pub(crate) mod sts;

use crate::clock::Clock;
use crate::fetch::Transport;
use crate::log::{info, warning};
use oidc_core::Secret;
use oidc_core::SessionClaims;
use oidc_core::{Aws, AwsRole, AwsSource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Temporary credentials. `Debug` shows the key id only.
#[derive(Clone)]
pub struct Creds {
    pub access_key_id: String,
    pub secret: Secret,
    pub token: Secret,
    /// As AWS wrote it (RFC 3339).
    pub expiration: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Creds({}, expires {}, [redacted])", self.access_key_id, self.expiration)
    }
}

impl Creds {
    fn new(access_key_id: String, secret: String, token: String, expiration: &str) -> Result<Creds, Failure> {
        let expires_at = oidc_core::parse_rfc3339(expiration)
            .ok_or_else(|| Failure::new("sts-error", format!("unreadable expiration {expiration:?}")))?;
        Ok(Creds {
            access_key_id,
            secret: Secret::new(secret),
            token: Secret::new(token),
            expiration: expiration.into(),
            expires_at,
        })
    }
}

/// A failure with a stable code (`imds-unreachable`, `imdsv2-refused`,
/// `sts-access-denied`, `sts-throttled`, `clock-skew`, ...) and a reason.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: &'static str,
    pub reason: String,
}

impl Failure {
    fn new(code: &'static str, reason: String) -> Failure {
        Failure { code, reason }
    }
}

/// `[\w+=,.@-]`, 2..=64 — the charset of RoleSessionName and SourceIdentity.
pub fn sts_name(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).take(64).collect();
    while out.len() < 2 {
        out.push('-');
    }
    out
}

fn claim_value(c: &SessionClaims, name: &str) -> Option<String> {
    let v = match name {
        "sub" => c.sub.clone(),
        "iss" | "issuer" => c.issuer.clone(),
        "preferred_username" | "identity" => c.identity.clone(),
        "account" | "user" => c.account.clone(),
        "groups" => c.groups.join(":"),
        "jti" => c.jti.clone()?,
        "acr" => c.acr.clone()?,
        _ => return None,
    };
    Some(v.chars().take(256).collect())
}

struct SessionAws {
    role: AwsRole,
    claims: SessionClaims,
    web_token: Option<Secret>,
    creds: Option<Creds>,
    last_error: Option<String>,
}

pub struct Broker {
    cfg: Aws,
    /// IMDS and STS (a scripted fake in tests).
    http: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    sessions: Mutex<HashMap<u64, SessionAws>>,
}

/// What open_session learns: credentials for a role, none (no rule), or a failure.
pub enum Outcome {
    Granted(String),
    NoRole,
    Failed { required: bool, code: &'static str, reason: String },
}

impl Broker {
    /// `http` should time out within `cfg.timeout_secs` (`fetch::Http::new`).
    pub fn new(cfg: Aws, http: Arc<dyn Transport>, clock: Arc<dyn Clock>) -> Broker {
        Broker { cfg, http, clock, sessions: Mutex::new(HashMap::new()) }
    }

    fn obtain(&self, role: &AwsRole, claims: &SessionClaims, web_token: Option<&Secret>) -> Result<Creds, Failure> {
        let deadline = self.clock.mono() + Duration::from_secs(self.cfg.timeout_secs);
        let mut p: Vec<(String, String)> = vec![
            ("Version".into(), "2011-06-15".into()),
            ("RoleArn".into(), role.role_arn.clone()),
            ("RoleSessionName".into(), sts_name(&claims.account)),
            ("DurationSeconds".into(), role.duration_secs.to_string()),
        ];
        let xml = match role.source {
            AwsSource::Instance => {
                let instance = imds::instance_credentials(self.http.as_ref(), &self.cfg.imds_endpoint)?;
                p.push(("Action".into(), "AssumeRole".into()));
                p.push(("SourceIdentity".into(), sts_name(&claims.sub)));
                if let Some(pol) = &role.policy {
                    p.push(("Policy".into(), pol.clone()));
                }
                let mut n = 0;
                for (key, claim) in &role.tags {
                    match claim_value(claims, claim) {
                        Some(v) => {
                            n += 1;
                            p.push((format!("Tags.member.{n}.Key"), key.clone()));
                            p.push((format!("Tags.member.{n}.Value"), v));
                        }
                        None => warning!("aws: session tag {key}: claim {claim} not available"),
                    }
                }
                sts::call(
                    self.http.as_ref(),
                    self.clock.as_ref(),
                    &self.cfg.sts(),
                    &self.cfg.region,
                    &crate::fetch::form_encode(&p),
                    Some(&instance),
                    deadline,
                    self.cfg.max_attempts,
                )?
            }
            AwsSource::WebIdentity => {
                let token =
                    web_token.ok_or_else(|| Failure::new("sts-error", "no token kept for web identity".into()))?;
                p.push(("Action".into(), "AssumeRoleWithWebIdentity".into()));
                p.push(("WebIdentityToken".into(), token.expose().to_string()));
                sts::call(
                    self.http.as_ref(),
                    self.clock.as_ref(),
                    &self.cfg.sts(),
                    &self.cfg.region,
                    &crate::fetch::form_encode(&p),
                    None,
                    deadline,
                    self.cfg.max_attempts,
                )?
            }
        };
        let c = sts::parse_credentials(&xml)?;
        // Credentials that expire before this host's "now" would be served
        // expired and renewed on every request: the clock is wrong, say so.
        let now = self.clock.now();
        if c.expires_at <= now {
            return Err(Failure::new(
                "clock-skew",
                format!(
                    "STS credentials expire at {}, before this host's clock ({}): check the clock",
                    c.expiration,
                    oidc_core::format_rfc3339(now)
                ),
            ));
        }
        Ok(c)
    }

    /// Does the role for these groups use the user's token (web identity)?
    pub fn wants_web_token(&self, groups: &[String], issuer: &str) -> bool {
        self.cfg.role_for(groups, issuer).is_some_and(|r| r.source == AwsSource::WebIdentity)
    }

    /// At session open: the role for the session's groups, and its first credentials.
    pub fn open(&self, session: u64, claims: &SessionClaims, web_token: Option<Secret>) -> Outcome {
        let Some(role) = self.cfg.role_for(&claims.groups, &claims.issuer).cloned() else {
            if !self.cfg.roles.is_empty() {
                info!(
                    "aws: session {session} ({}): no role matches groups {}",
                    claims.account,
                    claims.groups.join(",")
                );
            }
            return if self.cfg.require_credentials {
                Outcome::Failed { required: true, code: "no-role", reason: "no AWS role matches your groups".into() }
            } else {
                Outcome::NoRole
            };
        };
        let web_token = if role.source == AwsSource::WebIdentity { web_token } else { None };
        let result = self.obtain(&role, claims, web_token.as_ref());
        let outcome = match &result {
            Ok(c) => {
                info!(
                    "aws: session {session} ({}): credentials for {} via {:?}, key {}, expire {}",
                    claims.account, role.role_arn, role.source, c.access_key_id, c.expiration
                );
                Outcome::Granted(format!("AWS credentials for {} until {}", role.role_arn, c.expiration))
            }
            Err(f) => {
                warning!("aws: session {session} ({}): {} for {}: {}", claims.account, f.code, role.role_arn, f.reason);
                Outcome::Failed { required: role.required, code: f.code, reason: f.reason.clone() }
            }
        };
        let (creds, last_error) = match result {
            Ok(c) => (Some(c), None),
            Err(f) => (None, Some(format!("{}: {}", f.code, f.reason))),
        };
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session, SessionAws { role, claims: claims.clone(), web_token, creds, last_error });
        outcome
    }

    /// Credentials for a live session, renewed if they expire soon. The
    /// sessions' lock is never held across an IMDS or STS call (up to
    /// `timeout_secs`): one session's slow renewal — which its user can
    /// trigger at will — must not hold up another session, a login's
    /// `open` or `forget`.
    pub fn credentials(&self, session: u64) -> Result<Creds, String> {
        let now = self.clock.now();
        let (role, claims, web_token) = {
            let map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let s = map.get(&session).ok_or("this session has no AWS role")?;
            // Every source: no credentials served for an identity whose token has
            // expired (plus the grace) — not the cached ones, and not new ones even where
            // IMDS would go on minting them.
            let grace = i64::try_from(self.cfg.token_grace_secs).unwrap_or(i64::MAX);
            if now >= s.claims.exp.saturating_add(grace) {
                return Err(format!(
                    "the login's token expired at {} (aws.token_grace_secs={grace}); log in again for new AWS \
                     credentials",
                    oidc_core::format_rfc3339(s.claims.exp)
                ));
            }
            let fresh = s
                .creds
                .as_ref()
                .filter(|c| c.expires_at - now > i64::try_from(self.cfg.refresh_before_secs).unwrap_or(0));
            if let Some(c) = fresh {
                return Ok(c.clone());
            }
            if s.role.source == AwsSource::WebIdentity && s.claims.exp <= now {
                return Err("the IdP token of this session has expired; log in again for new AWS credentials".into());
            }
            (s.role.clone(), s.claims.clone(), s.web_token.clone())
        };
        let result = self.obtain(&role, &claims, web_token.as_ref());
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // The session may have ended while STS answered: nothing is kept for it.
        let s = map.get_mut(&session).ok_or("this session has ended")?;
        match result {
            Ok(c) => {
                info!(
                    "aws: session {session} ({}): credentials renewed, key {}, expire {}",
                    s.claims.account, c.access_key_id, c.expiration
                );
                s.creds = Some(c.clone());
                s.last_error = None;
                Ok(c)
            }
            Err(f) => {
                warning!("aws: session {session} ({}): renewal failed: {}: {}", s.claims.account, f.code, f.reason);
                s.last_error = Some(format!("{}: {}", f.code, f.reason));
                // Still-valid credentials beat none.
                s.creds.clone().filter(|c| c.expires_at > now).ok_or(format!("{}: {}", f.code, f.reason))
            }
        }
    }

    /// The session lives on a fresh token of the same identity: credentials
    /// are served until its `exp` (+ grace); a web-identity role uses the new
    /// token from its next renewal. If the session's (narrowed) groups no
    /// longer match its role, its credentials stop.
    /// A session without an entry here (taken in after a restart of helperd,
    /// which keeps no credentials) gets one if `allowed` and a role matches:
    /// its credentials are then fetched on first request.
    pub fn renew(&self, session: u64, claims: &SessionClaims, web_token: Option<Secret>, allowed: bool) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = map.get_mut(&session) else {
            if let Some(role) = self.cfg.role_for(&claims.groups, &claims.issuer).filter(|_| allowed).cloned() {
                let web_token = web_token.filter(|_| role.source == AwsSource::WebIdentity);
                info!(
                    "aws: session {session} ({}): renewed: credentials for {} on request",
                    claims.account, role.role_arn
                );
                let s = SessionAws { role, claims: claims.clone(), web_token, creds: None, last_error: None };
                map.insert(session, s);
            }
            return;
        };
        let same_role =
            self.cfg.role_for(&claims.groups, &claims.issuer).is_some_and(|r| r.role_arn == s.role.role_arn);
        if !same_role {
            info!(
                "aws: session {session} ({}): renewed with groups {} that no longer match {}: credentials dropped",
                claims.account,
                claims.groups.join(","),
                s.role.role_arn
            );
            map.remove(&session);
            return;
        }
        s.claims = claims.clone();
        if s.role.source == AwsSource::WebIdentity {
            s.web_token = web_token;
        }
    }

    /// Forget the credentials (and the kept token) of ended sessions.
    pub fn forget(&self, live: &[u64]) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|id, s| {
            let keep = live.contains(id);
            if !keep {
                info!("aws: session {id} ({}) ended: credentials dropped", s.claims.account);
            }
            keep
        });
    }

    /// Role, source and expiry of a session's credentials (never secrets).
    pub fn describe(&self, session: u64) -> Option<String> {
        let map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get(&session)?;
        Some(match (&s.creds, &s.last_error) {
            (Some(c), _) => format!("{} ({:?}) until {}", s.role.role_arn, s.role.source, c.expiration),
            (None, Some(e)) => format!("{} ({:?}) unavailable: {e}", s.role.role_arn, s.role.source),
            (None, None) => format!("{} ({:?})", s.role.role_arn, s.role.source),
        })
    }

    /// The AWS config file sessions point AWS_CONFIG_FILE at: no secrets, just how to get them.
    pub fn write_config_file(&self) -> std::io::Result<()> {
        if self.cfg.roles.is_empty() {
            return Ok(());
        }
        let text =
            format!("[default]\ncredential_process = {}\nregion = {}\n", self.cfg.credential_process, self.cfg.region);
        crate::atomic::write(&self.cfg.config_file, text.as_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests;

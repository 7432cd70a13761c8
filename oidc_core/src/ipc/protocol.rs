//! The messages: one [`Request`] and one [`Response`] per connection, and the
//! paging rule for listings. No I/O here.

use serde::{Deserialize, Serialize};

use super::MAX_FRAME;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // one short-lived message per connection
pub enum Request {
    Ping,
    /// A token carried a kid the cache does not have (or there is no cache):
    /// fetch this issuer's keys now, unless fetched within the rate-limit window.
    RefreshJwks {
        issuer: String,
        /// Skip the rate limit (root only: `helperd refresh --force`).
        #[serde(default)]
        force: bool,
    },
    Status,
    /// A verified login (root peers only): admit the identity (`event`; none
    /// for a role account) and keep its claims until the session opens.
    Login {
        event: Option<crate::accounts::LoginEvent>,
        claims: crate::session::SessionClaims,
        /// The verified token, kept only if the session's AWS role uses web identity.
        #[serde(default)]
        web_token: Option<crate::Secret>,
        /// A role account's token groups (an admission's come in `event`):
        /// helperd decides what they are on this host.
        #[serde(default)]
        role_groups: Vec<String>,
        /// The token's replay id ([`crate::verify::replay_id`]): each token
        /// logs in once per host.
        #[serde(default)]
        replay_id: Option<String>,
    },
    /// The account store (names, ids, groups, issuer, identity, GECOS, login
    /// times; root only), one page from `offset` on.
    Users {
        #[serde(default)]
        offset: usize,
    },
    /// Move an OIDC account name to another identity of its issuer (root only):
    /// an IdP app re-created, a pairwise `sub` changed.
    Rebind {
        name: String,
        issuer: String,
        sub: String,
    },
    /// Bind a verified login to the session opened by process `pid` (root only).
    OpenSession {
        login_id: String,
        pid: i32,
        tty: String,
        rhost: String,
    },
    /// The session opened by `pid` ended (root only).
    CloseSession {
        pid: i32,
    },
    /// The verified claims of the session the calling process belongs to
    /// (root only; helperd finds the session from the peer's process tree and real uid).
    SessionClaims,
    /// Live sessions (root only), one page from `offset` on.
    Sessions {
        #[serde(default)]
        offset: usize,
    },
    /// Start a device-code login with an issuer (root only), for a login
    /// from `rhost` (flows are capped per remote host).
    DeviceStart {
        issuer: String,
        #[serde(default)]
        rhost: String,
    },
    /// Wait up to `timeout_secs` for a device-code login to finish (root only).
    DeviceWait {
        flow_id: String,
        timeout_secs: u64,
    },
    /// AWS credentials of the caller's session (the session's uid, or root).
    AwsCredentials,
}

impl Request {
    /// Requests only root peers may make (the rest are public or rate-limited).
    pub fn root_only(&self) -> bool {
        matches!(
            self,
            Request::Login { .. }
                | Request::Users { .. }
                | Request::Rebind { .. }
                | Request::OpenSession { .. }
                | Request::CloseSession { .. }
                | Request::SessionClaims
                | Request::Sessions { .. }
                | Request::DeviceStart { .. }
                | Request::DeviceWait { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::RefreshJwks { .. } => "refresh_jwks",
            Request::Status => "status",
            Request::Login { .. } => "login",
            Request::Users { .. } => "users",
            Request::Rebind { .. } => "rebind",
            Request::OpenSession { .. } => "open_session",
            Request::CloseSession { .. } => "close_session",
            Request::SessionClaims => "session_claims",
            Request::Sessions { .. } => "sessions",
            Request::DeviceStart { .. } => "device_start",
            Request::DeviceWait { .. } => "device_wait",
            Request::AwsCredentials => "aws_credentials",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Pong {
        version: String,
    },
    /// `fetched`: a fetch happened for this request; `detail` explains a skip or an error.
    Refreshed {
        fetched: bool,
        ok: bool,
        detail: String,
    },
    Status {
        issuers: Vec<IssuerStatus>,
    },
    Admitted {
        detail: String,
        login_id: String,
        /// The host groups helperd admitted (policy is checked on these);
        /// none for a role account.
        #[serde(default)]
        groups: Option<Vec<String>>,
    },
    Rebound {
        detail: String,
    },
    Refused {
        code: RefusalCode,
        reason: String,
    },
    Users {
        users: Vec<crate::accounts::StoredUser>,
        /// The offset of the next page, if there is one.
        #[serde(default)]
        next: Option<usize>,
    },
    SessionOpened {
        id: u64,
        /// AWS credentials for the session: what happened (no secrets).
        aws: Option<AwsStatus>,
    },
    SessionClosed {
        closed: usize,
    },
    Claims {
        claims: Option<Box<crate::session::SessionClaims>>,
        detail: String,
    },
    Sessions {
        sessions: Vec<crate::session::SessionInfo>,
        #[serde(default)]
        next: Option<usize>,
    },
    DeviceStarted {
        flow_id: String,
        verification_uri: String,
        verification_uri_complete: Option<String>,
        user_code: String,
        expires_in: u64,
    },
    /// The ID token of a finished device-code login (verified by the module like any token).
    DeviceToken {
        id_token: crate::Secret,
    },
    DeviceFailed {
        code: DeviceFailure,
        reason: String,
    },
    AwsCredentials {
        access_key_id: String,
        secret_access_key: crate::Secret,
        session_token: crate::Secret,
        /// RFC 3339.
        expiration: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsStatus {
    pub granted: bool,
    /// The role's credentials could not be obtained and the role is `required`
    /// (or no role matched and `aws.require_credentials` is set): the login fails.
    pub required_failed: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerStatus {
    pub issuer: String,
    pub keys: usize,
    pub fetched_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub fetches: u64,
    pub rate_limited: u64,
    pub last_error: Option<String>,
}

/// Bytes of a page of a listing: well below [`MAX_FRAME`], leaving room for the envelope.
pub const PAGE_BUDGET: usize = MAX_FRAME - 8 * 1024;

/// One page of `items` from `offset`: as many as fit in [`PAGE_BUDGET`] bytes
/// of JSON (at least one, so a listing always advances), and where the next
/// page starts. `shrink` makes an item that alone exceeds the budget fit.
pub fn page<T: Serialize + Clone>(items: &[T], offset: usize, shrink: impl Fn(&mut T)) -> (Vec<T>, Option<usize>) {
    let mut out = vec![];
    let mut used = 0usize;
    for (i, it) in items.iter().enumerate().skip(offset) {
        let mut it = it.clone();
        let mut n = serde_json::to_vec(&it).map_or(usize::MAX, |v| v.len() + 1);
        if n > PAGE_BUDGET {
            shrink(&mut it);
            n = serde_json::to_vec(&it).map_or(usize::MAX, |v| v.len() + 1);
        }
        if !out.is_empty() && used.saturating_add(n) > PAGE_BUDGET {
            return (out, Some(i));
        }
        used = used.saturating_add(n);
        out.push(it);
    }
    (out, None)
}

/// Why helperd refused a request: one code per meaning, the same string on
/// the wire, in logs and in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCode {
    /// The token was already used to log in on this host.
    Replayed,
    /// The account store cannot be read or written (or no randomness for an id).
    AccountsUnavailable,
    /// Only root may make this request.
    PermissionDenied,
    /// The issuer is not configured.
    UntrustedIssuer,
    /// The name belongs to another issuer's name space.
    NameOfAnotherIssuer,
    /// The name is a local (files or other NSS source) account.
    LocalAccount,
    /// The name is reserved on Linux hosts.
    ReservedName,
    /// The identity's uid is taken by another identity (until pinned).
    UidCollision,
    /// No such OIDC account (rebind).
    NoSuchAccount,
    /// The name is held by another identity of the issuer.
    NameTaken,
    /// Rebind: the identity already holds another name on this host.
    IdentityHoldsAnotherName,
    /// The identity logs in under a new name but already holds another one
    /// (a name changed at the IdP: `helperd rebind` moves it).
    IdentityRenamed,
    /// The uid claim is outside the configured range.
    UidOutOfRange,
}

impl RefusalCode {
    /// The code as logged and sent (`replayed`, `uid-collision`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Replayed => "replayed",
            RefusalCode::AccountsUnavailable => "accounts-unavailable",
            RefusalCode::PermissionDenied => "permission-denied",
            RefusalCode::UntrustedIssuer => "untrusted-issuer",
            RefusalCode::NameOfAnotherIssuer => "name-of-another-issuer",
            RefusalCode::LocalAccount => "local-account",
            RefusalCode::ReservedName => "reserved-name",
            RefusalCode::UidCollision => "uid-collision",
            RefusalCode::NoSuchAccount => "no-such-account",
            RefusalCode::NameTaken => "name-taken",
            RefusalCode::IdentityHoldsAnotherName => "identity-holds-another-name",
            RefusalCode::IdentityRenamed => "identity-renamed",
            RefusalCode::UidOutOfRange => "uid-out-of-range",
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a device-code login ended without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceFailure {
    /// The user denied the login at the IdP (`access_denied`).
    Denied,
    /// The device code expired at the IdP (`expired_token`).
    Expired,
    /// Not completed within the module's wait.
    Timeout,
    /// The process that started the login is gone.
    Abandoned,
    /// Too many flows (per remote host, or in all).
    Busy,
    /// Anything else: the IdP's answer, the network, helperd.
    Error,
}

impl DeviceFailure {
    /// The code as logged and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceFailure::Denied => "denied",
            DeviceFailure::Expired => "expired",
            DeviceFailure::Timeout => "timeout",
            DeviceFailure::Abandoned => "abandoned",
            DeviceFailure::Busy => "busy",
            DeviceFailure::Error => "error",
        }
    }
}

impl std::fmt::Display for DeviceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod codes {
    use super::*;

    #[test]
    fn codes_are_the_same_on_the_wire_and_in_logs() {
        for c in [RefusalCode::Replayed, RefusalCode::UidCollision, RefusalCode::NameOfAnotherIssuer] {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::Value::from(c.as_str()));
        }
        for c in [DeviceFailure::Denied, DeviceFailure::Busy, DeviceFailure::Abandoned] {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::Value::from(c.as_str()));
        }
        assert!(serde_json::from_str::<RefusalCode>("\"made-up\"").is_err());
    }
}

//! The messages: one [`Request`] and one [`Response`] per connection, and the
//! paging rule for listings. No I/O here.

use serde::{Deserialize, Serialize};

use super::MAX_FRAME;

/// A request to helperd, one per connection. JSON, tagged by `op`; unknown
/// fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // one short-lived message per connection
pub enum Request {
    /// Liveness check (any peer); answered with [`Response::Pong`].
    Ping,
    /// A token carried a kid the cache does not have (or there is no cache):
    /// fetch this issuer's keys now, unless fetched within the rate-limit window.
    RefreshJwks {
        /// The issuer URL, as configured.
        issuer: String,
        /// Skip the rate limit (root only: `helperd refresh --force`).
        #[serde(default)]
        force: bool,
    },
    /// Key cache state of every configured issuer (any peer); answered with [`Response::Status`].
    Status,
    /// A verified login (root peers only): admit the identity (`event`; none
    /// for a role account) and keep its claims until the session opens.
    Login {
        /// The admission to record: name, identity and token groups of an OIDC user.
        event: Option<crate::accounts::LoginEvent>,
        /// The verified claims the session will carry; helperd replaces `groups`
        /// with the host groups it admits.
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
        /// Index of the first user to list (0 for the first page).
        #[serde(default)]
        offset: usize,
    },
    /// Move an OIDC account name to another identity of its issuer (root only):
    /// an IdP app re-created, a pairwise `sub` changed.
    Rebind {
        /// The account name to move.
        name: String,
        /// The new identity's issuer: the one whose name space holds `name`.
        issuer: String,
        /// The new identity: its value of the issuer's `identity_claim`.
        sub: String,
    },
    /// Bind a verified login to the session opened by process `pid` (root only).
    OpenSession {
        /// The id [`Response::Admitted`] returned: single use, forgotten after
        /// 10 minutes without a session (helperd's `PENDING_TTL`).
        login_id: String,
        /// The process calling `pam_open_session` (the module's getpid(2)).
        pid: i32,
        /// `PAM_TTY`, empty if unset.
        tty: String,
        /// `PAM_RHOST`, empty if unset.
        rhost: String,
        /// The stack's `end_at_expiry`: end this session at its token's `exp`
        /// (+ `[sessions] grace_secs`) even where the config keeps sessions.
        #[serde(default)]
        end_at_expiry: bool,
    },
    /// The session opened by `pid` ended (root only).
    CloseSession {
        /// The process that opened the session ([`Request::OpenSession`]'s `pid`).
        pid: i32,
    },
    /// The verified claims of the session the calling process belongs to
    /// (root only; helperd finds the session from the peer's process tree and real uid).
    SessionClaims,
    /// Live sessions (root only), one page from `offset` on.
    Sessions {
        /// Index of the first session to list (0 for the first page).
        #[serde(default)]
        offset: usize,
    },
    /// Start a device-code login with an issuer (root only), for a login
    /// from `rhost` (flows are capped per remote host).
    DeviceStart {
        /// The issuer URL, as configured.
        issuer: String,
        /// `PAM_RHOST` of the login, empty if unset.
        #[serde(default)]
        rhost: String,
    },
    /// Start a push login (OpenID Connect CIBA, poll mode) for PAM user
    /// `user` with an issuer (root only); capped like device-code logins, and
    /// one at a time per user. Wait for it with [`Request::DeviceWait`].
    CibaStart {
        /// The issuer URL, as configured.
        issuer: String,
        /// The PAM user: helperd makes the `login_hint` from it (`ciba_login_hint`).
        user: String,
        /// `PAM_SERVICE` (sshd, sudo, login), named in the binding message.
        service: String,
        /// `PAM_RHOST` of the login, empty if unset.
        #[serde(default)]
        rhost: String,
        /// The stack's `acr=` values, asked of the IdP as `acr_values` (the
        /// token is still checked against them).
        #[serde(default)]
        acr: Vec<String>,
    },
    /// Wait up to `timeout_secs` for a device-code or push login to finish (root only).
    DeviceWait {
        /// The id [`Response::DeviceStarted`] returned.
        flow_id: String,
        /// Seconds to wait; helperd caps it at 3600.
        timeout_secs: u64,
    },
    /// AWS credentials of the caller's session (the session's uid, or root).
    AwsCredentials,
    /// Extend the caller's session with a fresh token of the same identity
    /// (any peer: helperd finds the session from the peer's process tree and
    /// real uid, as for [`Request::SessionClaims`]).
    RenewSession {
        /// The new token (verified by helperd; never logged).
        token: crate::Secret,
    },
    /// Lock an identity out (root only): new logins refused, its live
    /// sessions ended, its credentials stopped. Persisted.
    Lock {
        /// Who.
        target: crate::locks::Target,
        /// Why, for the record (may be empty).
        #[serde(default)]
        reason: String,
        /// Who asks, as the CLI knows it (`SUDO_USER`); helperd adds the
        /// peer's uid and login uid.
        #[serde(default)]
        by: String,
    },
    /// Lift a lock set with [`Request::Lock`] (root only).
    Unlock {
        /// The lock's target, as set.
        target: crate::locks::Target,
    },
    /// Every lock in force (root only), one page from `offset` on.
    Locks {
        /// Index of the first lock to list (0 for the first page).
        #[serde(default)]
        offset: usize,
    },
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
                | Request::CibaStart { .. }
                | Request::DeviceWait { .. }
                | Request::Lock { .. }
                | Request::Unlock { .. }
                | Request::Locks { .. }
        )
    }

    /// The `op` tag of this request, for logs.
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
            Request::CibaStart { .. } => "ciba_start",
            Request::DeviceWait { .. } => "device_wait",
            Request::AwsCredentials => "aws_credentials",
            Request::RenewSession { .. } => "renew_session",
            Request::Lock { .. } => "lock",
            Request::Unlock { .. } => "unlock",
            Request::Locks { .. } => "locks",
        }
    }
}

/// helperd's answer to a [`Request`]. JSON, tagged by `kind`; unknown fields
/// are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong {
        /// helperd's package version.
        version: String,
    },
    /// `fetched`: a fetch happened for this request; `detail` explains a skip or an error.
    Refreshed {
        /// A fetch of the issuer's keys happened for this request.
        fetched: bool,
        /// The fetch succeeded; on a skip, the last fetch did not fail.
        ok: bool,
        /// For people: key count and lifetime, the rate limit, or the error.
        detail: String,
    },
    /// Answer to [`Request::Status`].
    Status {
        /// One entry per configured issuer, in config order.
        issuers: Vec<IssuerStatus>,
    },
    /// [`Request::Login`] accepted: the login is pending until
    /// [`Request::OpenSession`] names `login_id`.
    Admitted {
        /// What was admitted, for the log.
        detail: String,
        /// Random id of the pending login: the module keeps it for the session
        /// stage and sends it in [`Request::OpenSession`].
        login_id: String,
        /// The host groups helperd admitted (policy is checked on these);
        /// none for a role account.
        #[serde(default)]
        groups: Option<Vec<String>>,
    },
    /// Answer to [`Request::Rebind`].
    Rebound {
        /// What moved, for people.
        detail: String,
    },
    /// helperd refused the request.
    Refused {
        /// Why: one code per meaning (`replayed`, `permission-denied`, an
        /// admission refusal's code, ...), the same string in logs.
        code: RefusalCode,
        /// Why, for people.
        reason: String,
    },
    /// Answer to [`Request::Users`]: one page of the account store.
    Users {
        /// The page; an entry's `groups` may be cut to 16 to fit the page.
        users: Vec<crate::accounts::StoredUser>,
        /// The offset of the next page, if there is one.
        #[serde(default)]
        next: Option<usize>,
    },
    /// Answer to [`Request::OpenSession`]: the session is live in helperd.
    SessionOpened {
        /// helperd's id of the session.
        id: u64,
        /// AWS credentials for the session: what happened (no secrets).
        aws: Option<AwsStatus>,
    },
    /// Answer to [`Request::CloseSession`].
    SessionClosed {
        /// How many live sessions of that process were removed (0 if none).
        closed: usize,
    },
    /// Answer to [`Request::SessionClaims`].
    Claims {
        /// The claims of the caller's session; none if it is in no OIDC session.
        claims: Option<Box<crate::session::SessionClaims>>,
        /// How the session was found, or why none was, for people.
        detail: String,
    },
    /// Answer to [`Request::Sessions`]: one page of the live sessions.
    Sessions {
        /// The page; an entry's `groups` and `idp_groups` may be cut to 16 to fit the page.
        sessions: Vec<crate::session::SessionInfo>,
        /// The offset of the next page, if there is one.
        #[serde(default)]
        next: Option<usize>,
    },
    /// Answer to [`Request::DeviceStart`]: what to show the user.
    DeviceStarted {
        /// helperd's random id of the flow, for [`Request::DeviceWait`].
        flow_id: String,
        /// The IdP's page where the user enters `user_code`.
        verification_uri: String,
        /// The same page with the code filled in, if the IdP gives one.
        verification_uri_complete: Option<String>,
        /// The code the user types at `verification_uri`.
        user_code: String,
        /// Seconds until the IdP expires the code (capped at 3600; 300 if the IdP says nothing).
        expires_in: u64,
    },
    /// Answer to [`Request::CibaStart`]: the IdP is asking the user.
    CibaStarted {
        /// helperd's random id of the flow, for [`Request::DeviceWait`].
        flow_id: String,
        /// The short code in the binding message the user's device shows.
        code: String,
        /// Seconds until the IdP expires the request.
        expires_in: u64,
    },
    /// The ID token of a finished device-code login (verified by the module like any token).
    DeviceToken {
        /// The token, unverified: never logged.
        id_token: crate::Secret,
    },
    /// A device-code login ended without a token.
    DeviceFailed {
        /// How the flow ended without a token.
        code: DeviceFailure,
        /// Details, for people.
        reason: String,
    },
    /// Answer to [`Request::AwsCredentials`]: the session's temporary AWS credentials.
    AwsCredentials {
        /// The AWS access key id (not secret).
        access_key_id: String,
        /// The secret access key: never logged.
        secret_access_key: crate::Secret,
        /// The STS session token: never logged.
        session_token: crate::Secret,
        /// RFC 3339.
        expiration: String,
    },
    /// Answer to [`Request::RenewSession`]: the session now lives on the new token.
    Renewed {
        /// helperd's id of the session.
        id: u64,
        /// The new token's `exp`: claim reuse and AWS credentials until then.
        exp: i64,
        /// When the session ends under `[sessions] on_expiry = "end"`.
        ends_at: Option<i64>,
        /// For people: what changed (groups narrowed, ...).
        detail: String,
    },
    /// Answer to [`Request::Lock`].
    Locked {
        /// The live sessions ended.
        ended: Vec<u64>,
        /// For people.
        detail: String,
    },
    /// Answer to [`Request::Unlock`].
    Unlocked {
        /// Locks removed (0: there was none for that target).
        removed: usize,
    },
    /// Answer to [`Request::Locks`]: one page of the locks in force.
    Locks {
        /// The page.
        locks: Vec<crate::locks::Lock>,
        /// The offset of the next page, if there is one.
        #[serde(default)]
        next: Option<usize>,
    },
    /// The request failed (a bad frame, an unknown issuer or login id, ...).
    Error {
        /// What went wrong, for people.
        message: String,
    },
}

/// What became of a session's AWS credentials when it opened (no secrets);
/// none in [`Response::SessionOpened`] when no role applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsStatus {
    /// helperd obtained the role's credentials.
    pub granted: bool,
    /// The role's credentials could not be obtained and the role is `required`
    /// (or no role matched and `aws.require_credentials` is set): the login fails.
    pub required_failed: bool,
    /// For people: the role granted, or why not (with a code).
    pub message: String,
}

/// Key cache state of one issuer in helperd (answer to [`Request::Status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerStatus {
    /// The issuer URL, as configured.
    pub issuer: String,
    /// Keys in the cache (0 if there is none).
    pub keys: usize,
    /// When the cached keys were fetched (Unix seconds); none before the first fetch.
    pub fetched_at: Option<i64>,
    /// When the cached keys go stale (Unix seconds); none before the first fetch.
    pub expires_at: Option<i64>,
    /// Fetches tried since helperd started.
    pub fetches: u64,
    /// Refresh requests skipped by the rate limit since helperd started.
    pub rate_limited: u64,
    /// The error of the last fetch; none once one succeeds.
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
    /// The identity is locked on this host (`helperd lock`, the fleet lock list).
    Locked,
    /// Renewal: the token is another identity's than the session's.
    OtherIdentity,
    /// Renewal: the caller is in no OIDC session of its uid.
    NoSession,
    /// Renewal: the token did not verify.
    TokenRefused,
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
            RefusalCode::Locked => "locked",
            RefusalCode::OtherIdentity => "other-identity",
            RefusalCode::NoSession => "no-session",
            RefusalCode::TokenRefused => "token-refused",
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

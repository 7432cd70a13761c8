//! Every way a login can be refused, each with a stable short code (for logs and
//! tests), a precise operator-facing reason (`Display`, goes to syslog) and a
//! short user-facing message that leaks nothing.

use crate::audit::{clean, clean_n, MAX_CONTEXT};

/// Why a login was refused. Strings inside are operator context, cleaned by
/// `Display` before they reach a log; [`Rejection::user_message`] shows none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    // --- structure
    /// The token is the empty string.
    Empty,
    /// The token is longer than `pam.max_token_bytes`, checked before any decoding.
    Oversize {
        /// The token's length in bytes.
        len: usize,
        /// The limit in bytes (`pam.max_token_bytes`).
        max: usize,
    },
    /// Not a compact JWS: not three dot-separated parts, or an empty part.
    Malformed(&'static str),
    /// A part (`header`, `payload`) is not base64url without padding.
    BadBase64(&'static str),
    /// A part decodes but is not one strict JSON object.
    BadJson {
        /// `header` or `payload`.
        part: &'static str,
        /// The JSON parser's error.
        detail: String,
    },
    // --- header
    /// The header says `alg: none` (refused whatever the config says).
    AlgNone,
    /// An `alg` this crate does not implement (the header's value).
    AlgUnsupported(String),
    /// An `alg` this crate implements but the issuer's `algorithms` leave out.
    AlgNotAllowed {
        /// The token's `alg`.
        alg: String,
        /// The issuer's allowed algorithms, comma-separated.
        allowed: String,
    },
    /// The header has `crit`: no critical extensions are supported.
    Crit,
    /// Another header fault: `alg` missing or not a string, a bad `kid` or `typ`.
    BadHeader(String),
    // --- issuer and keys
    /// The token's (unverified) `iss` is not a configured issuer.
    UntrustedIssuer(String),
    /// The issuer's key set has no key with the token's `kid` (the `kid`);
    /// a refresh of the keys may fix it.
    UnknownKid(String),
    /// Keys exist but none can check this token: wrong type or curve, no
    /// HMAC secret, unreadable material, too many kid-less candidates.
    NoUsableKey(String),
    /// The issuer's keys could not be had: no cache and helperd could not fetch them.
    KeysUnavailable(String),
    /// The signature does not verify with the selected key.
    BadSignature,
    // --- claims
    /// A required claim (its name) is absent.
    MissingClaim(&'static str),
    /// A claim is present but unusable (wrong type, empty, too long, out of range).
    BadClaim {
        /// The claim's name (from the token or the issuer's config).
        claim: String,
        /// What is wrong with it.
        why: String,
    },
    /// `exp` is past, even with the leeway.
    Expired {
        /// The token's `exp` (Unix seconds).
        exp: i64,
        /// The verifier's time (Unix seconds).
        now: i64,
        /// The issuer's clock leeway in seconds.
        leeway: u64,
    },
    /// `nbf` is in the future, even with the leeway.
    NotYetValid {
        /// The token's `nbf` (Unix seconds).
        nbf: i64,
        /// The verifier's time (Unix seconds).
        now: i64,
        /// The issuer's clock leeway in seconds.
        leeway: u64,
    },
    /// `iat` is in the future, even with the leeway.
    IssuedInFuture {
        /// The token's `iat` (Unix seconds).
        iat: i64,
        /// The verifier's time (Unix seconds).
        now: i64,
        /// The issuer's clock leeway in seconds.
        leeway: u64,
    },
    /// `exp - iat` is longer than the issuer's `max_token_lifetime_secs`.
    LifetimeTooLong {
        /// `exp - iat` in seconds.
        lifetime: i64,
        /// The limit in seconds.
        max: u64,
    },
    /// No `aud` value is one of the issuer's audiences.
    AudienceMismatch {
        /// The token's audiences, comma-separated.
        got: String,
        /// The configured audiences, comma-separated.
        want: String,
    },
    /// `azp` is not what the audiences demand (absent with several audiences,
    /// or not a configured audience).
    AzpMismatch {
        /// The token's `azp`, or `(absent)`.
        got: String,
        /// What was expected.
        want: String,
    },
    /// `acr` is absent or not one of the issuer's `acr_values`.
    AcrNotAccepted {
        /// The token's `acr`, or `(absent)`.
        got: String,
        /// The accepted values, comma-separated.
        want: String,
    },
    /// `amr` lacks a value the issuer's `required_amr` lists.
    AmrMissing {
        /// The token's `amr` values, comma-separated.
        got: String,
        /// The required values (all of them), comma-separated.
        want: String,
    },
    /// `auth_time` is older than the issuer's `max_auth_age_secs`.
    AuthTooOld {
        /// Seconds since `auth_time`.
        age: i64,
        /// The limit in seconds.
        max: u64,
    },
    /// `typ: at+jwt` (RFC 9068): an access token is not a login token.
    AccessToken,
    /// An `[issuer.require]` condition failed.
    ClaimCondition(String),
    // --- identity and policy
    /// The username claim does not make a valid login name (the reason).
    InvalidUsername(String),
    /// The name is reserved or already means something on this host.
    ReservedName(String),
    /// The PAM user is not the token's own name and no account rule of the
    /// token's issuer grants it.
    NoAccountRule {
        /// The PAM user asked for.
        account: String,
        /// Why no rule matched.
        why: String,
    },
    /// The token's login name is not the PAM user.
    UserMismatch {
        /// The login name the token maps to.
        token_user: String,
        /// The user PAM asked to authenticate.
        pam_user: String,
    },
    /// Group policy: none of the token's host groups is allowed here.
    NotInAllowedGroup {
        /// The allowed groups, which policy demanded them, and what the token has.
        want: String,
    },
    /// Group policy: a token group is denied here (the group, or the reason).
    InDeniedGroup(String),
    /// The stack demands a group but the caller has no verified OIDC
    /// identity (no login in this transaction, no usable session).
    NoOidcIdentity(String),
    // --- accounts
    /// helperd refused the identity (code, reason): name taken, uid collision, local account...
    AccountRefused {
        /// helperd's refusal code (see [`crate::Response::Refused`]).
        code: crate::ipc::RefusalCode,
        /// helperd's reason.
        reason: String,
    },
    /// helperd could not be asked, or could not record the login (the reason).
    AccountsUnavailable(String),
    /// The token was already used to log in on this host.
    Replayed(String),
    /// A fresh token that does not meet the stack's max_age / acr demands.
    StepUpFailed(String),
    // --- device-code login
    /// The IdP says the user denied the device-code login.
    DeviceDenied(String),
    /// The device code expired before the user finished.
    DeviceExpired(String),
    /// The module stopped waiting for the device-code login, or its call to helperd failed.
    DeviceTimeout(String),
    /// The device-code login failed otherwise (helperd or the IdP).
    DeviceError(String),
    // --- push login (CIBA)
    /// The user (or the IdP for them) denied the push login.
    CibaDenied(String),
    /// No approval in time (the module stopped waiting, or the request expired).
    CibaTimeout(String),
    /// The push login could not be started or failed otherwise.
    CibaError(String),
    // --- environment
    /// The config is unreadable or invalid, or a PAM call failed: not the token's fault.
    Config(String),
    /// No token came: the conversation failed or was empty, or `use_first_pass` found none.
    NoToken(String),
}

impl Rejection {
    /// Stable machine-readable code, e.g. `expired`, `audience-mismatch`.
    pub fn code(&self) -> &'static str {
        use Rejection::*;
        match self {
            Empty => "empty-token",
            Oversize { .. } => "oversize",
            Malformed(_) => "malformed",
            BadBase64(_) => "bad-base64",
            BadJson { .. } => "bad-json",
            AlgNone => "alg-none",
            AlgUnsupported(_) => "alg-unsupported",
            AlgNotAllowed { .. } => "alg-not-allowed",
            Crit => "crit",
            BadHeader(_) => "bad-header",
            UntrustedIssuer(_) => "untrusted-issuer",
            UnknownKid(_) => "unknown-kid",
            NoUsableKey(_) => "no-usable-key",
            KeysUnavailable(_) => "keys-unavailable",
            BadSignature => "bad-signature",
            MissingClaim(_) => "missing-claim",
            BadClaim { .. } => "bad-claim",
            Expired { .. } => "expired",
            NotYetValid { .. } => "not-yet-valid",
            IssuedInFuture { .. } => "issued-in-future",
            LifetimeTooLong { .. } => "lifetime-too-long",
            AudienceMismatch { .. } => "audience-mismatch",
            AzpMismatch { .. } => "azp-mismatch",
            AcrNotAccepted { .. } => "acr-not-accepted",
            AmrMissing { .. } => "amr-missing",
            AuthTooOld { .. } => "auth-too-old",
            AccessToken => "access-token",
            ClaimCondition(_) => "claim-condition",
            InvalidUsername(_) => "invalid-username",
            ReservedName(_) => "reserved-name",
            NoAccountRule { .. } => "no-account-rule",
            UserMismatch { .. } => "user-mismatch",
            NotInAllowedGroup { .. } => "not-in-allowed-group",
            InDeniedGroup(_) => "in-denied-group",
            NoOidcIdentity(_) => "no-oidc-identity",
            AccountRefused { .. } => "account-refused",
            AccountsUnavailable(_) => "accounts-unavailable",
            Replayed(_) => "replayed",
            StepUpFailed(_) => "step-up-failed",
            DeviceDenied(_) => "device-denied",
            DeviceExpired(_) => "device-expired",
            DeviceTimeout(_) => "device-timeout",
            DeviceError(_) => "device-error",
            CibaDenied(_) => "ciba-denied",
            CibaTimeout(_) => "ciba-timeout",
            CibaError(_) => "ciba-error",
            Config(_) => "config-error",
            NoToken(_) => "no-token",
        }
    }

    /// What the person at the prompt sees: short and non-leaking.
    pub fn user_message(&self) -> &'static str {
        use Rejection::*;
        match self {
            Expired { .. } => "OIDC login refused: token expired",
            NotYetValid { .. } | IssuedInFuture { .. } => "OIDC login refused: token not valid yet (check the clock)",
            KeysUnavailable(_) => "OIDC login refused: issuer keys unavailable",
            UserMismatch { .. } | NoAccountRule { .. } => "OIDC login refused: token is for another user",
            ReservedName(_) => "OIDC login refused: this name cannot be used",
            NotInAllowedGroup { .. } => "OIDC login refused: not in a group allowed on this host",
            InDeniedGroup(_) | NoOidcIdentity(_) => "OIDC login refused: access denied",
            Config(_) => "OIDC login unavailable: configuration error",
            AccountRefused { .. } | AccountsUnavailable(_) => "OIDC login refused: account unavailable",
            StepUpFailed(_) => "OIDC login refused: a more recent or stronger login is required",
            Replayed(_) => "OIDC login refused: this token was already used; get a new one",
            DeviceDenied(_) => "OIDC login refused: the login was denied",
            DeviceExpired(_) | DeviceTimeout(_) => "OIDC login refused: the login was not completed in time",
            DeviceError(_) => "OIDC login unavailable: device login failed",
            CibaDenied(_) => "OIDC login refused: the login was denied",
            CibaTimeout(_) => "OIDC login refused: the login was not approved in time",
            CibaError(_) => "OIDC login unavailable: push login failed",
            NoToken(_) => "OIDC login refused: no token given",
            _ => "OIDC login refused: invalid token",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Rejection::*;
        match self {
            Empty => write!(f, "empty token"),
            Oversize { len, max } => write!(f, "token too large: {len} bytes, max {max}"),
            Malformed(why) => write!(f, "malformed token: {why}"),
            BadBase64(part) => write!(f, "bad base64url in {part}"),
            BadJson { part, detail } => write!(f, "bad JSON in {part}: {}", clean(detail)),
            AlgNone => write!(f, "alg none is never accepted"),
            AlgUnsupported(a) => write!(f, "unsupported alg {}", clean(a)),
            AlgNotAllowed { alg, allowed } => {
                write!(f, "alg {} not allowed for this issuer (allowed: {allowed})", clean(alg))
            }
            Crit => write!(f, "crit header present: no critical extensions are supported"),
            BadHeader(why) => write!(f, "bad header: {}", clean(why)),
            UntrustedIssuer(iss) => write!(f, "issuer not trusted: {}", clean(iss)),
            UnknownKid(kid) => write!(f, "unknown kid {}", clean(kid)),
            NoUsableKey(why) => write!(f, "no usable key: {}", clean_n(why, MAX_CONTEXT)),
            KeysUnavailable(why) => {
                write!(f, "issuer keys unavailable: {}", clean_n(why, MAX_CONTEXT))
            }
            BadSignature => write!(f, "signature verification failed"),
            MissingClaim(c) => write!(f, "missing claim {c}"),
            BadClaim { claim, why } => write!(f, "bad claim {}: {}", clean(claim), clean(why)),
            Expired { exp, now, leeway } => write!(
                f,
                "expired: exp={exp} now={now} leeway={leeway}s (expired {} ago at {})",
                crate::audit::span(now - exp),
                crate::audit::utc(*exp)
            ),
            NotYetValid { nbf, now, leeway } => write!(
                f,
                "not yet valid: nbf={nbf} now={now} leeway={leeway}s (valid in {} at {}; is this host's clock behind?)",
                crate::audit::span(nbf - now),
                crate::audit::utc(*nbf)
            ),
            IssuedInFuture { iat, now, leeway } => write!(
                f,
                "issued in the future: iat={iat} now={now} leeway={leeway}s ({} ahead at {}; is this host's clock behind?)",
                crate::audit::span(iat - now),
                crate::audit::utc(*iat)
            ),
            LifetimeTooLong { lifetime, max } => {
                write!(f, "token lifetime {lifetime}s exceeds max {max}s")
            }
            AudienceMismatch { got, want } => {
                write!(f, "audience mismatch: got {} want {}", clean(got), clean(want))
            }
            AzpMismatch { got, want } => {
                write!(f, "azp mismatch: got {} want {}", clean(got), clean(want))
            }
            AcrNotAccepted { got, want } => {
                write!(f, "acr not accepted: got {} want one of {}", clean(got), clean(want))
            }
            AmrMissing { got, want } => {
                write!(f, "amr missing required values: got {} want all of {}", clean(got), clean(want))
            }
            AuthTooOld { age, max } => write!(f, "auth_time too old: {age}s ago, max {max}s"),
            AccessToken => write!(f, "token typ is at+jwt: an access token is not a login token (allow_access_tokens)"),
            ClaimCondition(why) => write!(f, "issuer condition not met: {}", clean_n(why, MAX_CONTEXT)),
            InvalidUsername(why) => write!(f, "username claim is not a valid login name: {}", clean(why)),
            ReservedName(why) => write!(f, "reserved name: {}", clean_n(why, MAX_CONTEXT)),
            NoAccountRule { account, why } => {
                write!(f, "no account rule lets this token log in as {}: {}", clean(account), clean_n(why, MAX_CONTEXT))
            }
            UserMismatch { token_user, pam_user } => {
                write!(f, "identity mismatch: token is for {} but login is for {}", clean(token_user), clean(pam_user))
            }
            NotInAllowedGroup { want } => {
                write!(f, "not in an allowed group (need one of {})", clean(want))
            }
            InDeniedGroup(g) => write!(f, "member of denied group {}", clean(g)),
            NoOidcIdentity(why) => write!(f, "{}", clean_n(why, MAX_CONTEXT)),
            AccountRefused { code, reason } => write!(f, "account refused ({code}): {}", clean_n(reason, MAX_CONTEXT)),
            AccountsUnavailable(why) => write!(f, "account store unavailable: {}", clean_n(why, MAX_CONTEXT)),
            Replayed(why) => write!(f, "replayed token: {}", clean_n(why, MAX_CONTEXT)),
            StepUpFailed(why) => write!(f, "token does not meet this stack's demands: {}", clean_n(why, MAX_CONTEXT)),
            DeviceDenied(why) => write!(f, "device login denied: {}", clean_n(why, MAX_CONTEXT)),
            DeviceExpired(why) => write!(f, "device login expired: {}", clean_n(why, MAX_CONTEXT)),
            DeviceTimeout(why) => write!(f, "device login timed out: {}", clean_n(why, MAX_CONTEXT)),
            DeviceError(why) => write!(f, "device login failed: {}", clean_n(why, MAX_CONTEXT)),
            CibaDenied(why) => write!(f, "push login denied: {}", clean_n(why, MAX_CONTEXT)),
            CibaTimeout(why) => write!(f, "push login not approved in time: {}", clean_n(why, MAX_CONTEXT)),
            CibaError(why) => write!(f, "push login failed: {}", clean_n(why, MAX_CONTEXT)),
            Config(why) => write!(f, "configuration error: {}", clean_n(why, MAX_CONTEXT)),
            NoToken(why) => write!(f, "no token: {}", clean(why)),
        }
    }
}

impl std::error::Error for Rejection {}

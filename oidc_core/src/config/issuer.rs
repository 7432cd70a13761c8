//! `[[issuer]]`: one trusted OpenID Provider and the rules its tokens must meet.

use super::Groups;
use crate::alg::Alg;
use crate::claims::Conditions;
use serde::Deserialize;
use std::path::PathBuf;

/// `[[issuer]]`: one trusted IdP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// Exact `iss` value; discovery is fetched from `<url>/.well-known/openid-configuration`.
    pub url: String,
    /// Other exact `iss` spellings this issuer signs with (Google: `accounts.google.com`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Accepted `aud` values (client IDs); at least one.
    pub audiences: Vec<String>,
    /// Accepted signature algorithms (default RS256 and ES256; `none` never).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Alg>,
    /// The claim that names a person or workload for good (`sub`; Entra: `oid`).
    /// An identity is (issuer, this claim's value).
    #[serde(default = "default_identity_claim")]
    pub identity_claim: String,
    /// Claim path of the login name (ignored when `username_template` is set).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The login name built from claims, e.g. `gh-{repository_owner}`.
    #[serde(default)]
    pub username_template: Option<String>,
    /// The login name is an email (`alice@example.com`): take the local part —
    /// only for this domain; other domains are refused.
    #[serde(default)]
    pub username_domain: Option<String>,
    /// Fold the login name to lower case (`Alice` logs in as `alice`). Only
    /// for IdPs whose names are unique regardless of case (else `ALICE` and
    /// `alice` would be one host name).
    #[serde(default)]
    pub username_lowercase: bool,
    /// Prepended to every login name and every automatic group name of this
    /// issuer: the issuer's own name space. Two issuers that make user
    /// accounts never share a name space (one of them may have none).
    #[serde(default)]
    pub name_prefix: String,
    /// Tokens log in as the name they carry (people). `false`: only through
    /// `[[role_account]]` rules of this issuer (CI jobs, workloads).
    #[serde(default = "yes")]
    pub user_accounts: bool,
    /// Claim path of the groups (a string or a list of strings).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Which IdP groups become host groups, and under which names.
    #[serde(default)]
    pub groups: Groups,
    /// Conditions every token of this issuer must meet (claim path → value,
    /// glob or list): `hd`, `tid`, `repository_owner`, `email_verified` ...
    #[serde(default)]
    pub require: Conditions,
    /// When the login name comes from `email`, `email_verified` must be true.
    #[serde(default = "yes")]
    pub require_email_verified: bool,
    /// Accept access tokens (`typ: at+jwt`) as login tokens. Off: only ID tokens.
    #[serde(default)]
    pub allow_access_tokens: bool,
    /// Take new accounts' uids from this claim (e.g. `uidNumber`) — only for
    /// an issuer trusted to assign uids; every other issuer's come from the hash.
    #[serde(default)]
    pub uid_claim: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (default 60).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Longest `exp - iat` accepted, in seconds (default 3600).
    #[serde(default = "default_max_lifetime")]
    pub max_token_lifetime_secs: u64,
    /// If set, `azp` must be present and equal.
    #[serde(default)]
    pub required_azp: Option<String>,
    /// If non-empty, `acr` must be one of these.
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// Every listed value must appear in `amr`.
    #[serde(default)]
    pub required_amr: Vec<String>,
    /// If set, `auth_time` must be present and at most this old.
    #[serde(default)]
    pub max_auth_age_secs: Option<u64>,
    /// Root-only file holding the shared secret; required for (and only used by) HS* algorithms.
    #[serde(default)]
    pub hmac_secret_file: Option<PathBuf>,
    /// Skip discovery and fetch keys from here.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Public client for device-code login (RFC 8628); must be one of `audiences`.
    #[serde(default)]
    pub device_client_id: Option<String>,
    /// The device client's secret, for IdPs whose device flow needs a
    /// confidential client (Google): a file only root may read, checked at
    /// load; sent as `client_secret` (client_secret_post).
    #[serde(default)]
    pub device_client_secret_file: Option<PathBuf>,
    /// The device client's private key (PEM, PKCS#8 or PKCS#1 RSA; RSA, P-256
    /// or Ed25519) for `private_key_jwt` client authentication instead of a
    /// secret: a file only root may read, checked at load.
    #[serde(default)]
    pub device_client_key_file: Option<PathBuf>,
    /// Push login (OpenID Connect CIBA, poll mode): the client helperd asks
    /// the IdP's backchannel authentication endpoint with; must be one of
    /// `audiences`. CIBA clients are confidential: set
    /// `ciba_client_secret_file` or `ciba_client_key_file`.
    #[serde(default)]
    pub ciba_client_id: Option<String>,
    /// The CIBA client's secret (client_secret_post), root-only.
    #[serde(default)]
    pub ciba_client_secret_file: Option<PathBuf>,
    /// The CIBA client's private key (`private_key_jwt`), root-only.
    #[serde(default)]
    pub ciba_client_key_file: Option<PathBuf>,
    /// `kid` of the client key, for IdPs that hold several (private_key_jwt).
    #[serde(default)]
    pub client_key_id: Option<String>,
    /// The `login_hint` sent for a push login, from the PAM user: `{user}`
    /// (the whole name) or `{name}` (without the issuer's `name_prefix`),
    /// e.g. `{name}@example.com` (default `{name}`).
    #[serde(default = "default_ciba_login_hint")]
    pub ciba_login_hint: String,
    /// OAuth scope asked for in a push login (default `openid profile`).
    #[serde(default = "default_device_scope")]
    pub ciba_scope: String,
    /// Stacks without `token`/`device_code`/`ciba` arguments use push login with this issuer.
    #[serde(default)]
    pub ciba_login: bool,
    /// Number matching: the terminal does not show the push's code; the user
    /// types the code their phone shows, so an approval alone (push fatigue)
    /// lets no one in. Needs a client that shows prompts.
    #[serde(default)]
    pub ciba_confirm_code: bool,
    /// OAuth scope asked for in device-code login (default `openid profile`).
    #[serde(default = "default_device_scope")]
    pub device_scope: String,
    /// Stacks without `token`/`device_code` arguments use device-code login with this issuer.
    #[serde(default)]
    pub device_login: bool,
    /// Device-code sessions are revalidated with a refresh token: `offline_access`
    /// is added to `device_scope` and helperd keeps the refresh token the IdP returns.
    #[serde(default)]
    pub device_refresh: bool,
    /// Overrides `[sessions] on_expiry` for this issuer's sessions.
    #[serde(default)]
    pub session_on_expiry: Option<super::OnExpiry>,
}

/// Issuers anyone can get a token from: a token of theirs proves nothing about
/// your organisation until a condition binds the tenant (claim paths listed).
/// Only immutable ids count for CI issuers: names can be renamed and re-registered.
pub const MULTI_TENANT: &[(&str, &[&str])] = &[
    ("https://token.actions.githubusercontent.com", &["repository_owner_id", "repository_id", "enterprise_id"]),
    ("https://gitlab.com", &["namespace_id", "project_id"]),
    ("https://accounts.google.com", &["hd"]),
    ("https://login.microsoftonline.com/common/v2.0", &["tid"]),
    ("https://login.microsoftonline.com/organizations/v2.0", &["tid"]),
    ("https://login.microsoftonline.com/consumers/v2.0", &["tid"]),
    ("https://app.terraform.io", &["terraform_organization_id"]),
    ("https://agent.buildkite.com", &["organization_slug"]),
];

impl Issuer {
    /// Does this issuer sign with `iss` (its URL or an alias)?
    pub fn is(&self, iss: &str) -> bool {
        self.url == iss || self.aliases.iter().any(|a| a == iss)
    }

    /// Does this issuer have a name space (user accounts, or a prefix for its groups)?
    pub fn owns_names(&self) -> bool {
        self.user_accounts || !self.name_prefix.is_empty()
    }

    /// The root-only files this issuer names (key path, file), for the check at load.
    pub fn private_files(&self) -> Vec<(&'static str, &PathBuf)> {
        [
            ("device_client_secret_file", &self.device_client_secret_file),
            ("device_client_key_file", &self.device_client_key_file),
            ("ciba_client_secret_file", &self.ciba_client_secret_file),
            ("ciba_client_key_file", &self.ciba_client_key_file),
        ]
        .into_iter()
        .filter_map(|(k, f)| f.as_ref().map(|f| (k, f)))
        .collect()
    }

    /// The device and CIBA clients are consistent: (key, message) of the first fault.
    pub fn check_clients(&self) -> Result<(), (&'static str, String)> {
        let (dev, ciba) = (&self.device_client_id, &self.ciba_client_id);
        for (key, id) in [("device_client_id", dev), ("ciba_client_id", ciba)] {
            if let Some(d) = id.as_ref().filter(|d| !self.audiences.contains(d)) {
                return Err((key, format!("{d:?} must also be in audiences (it is the ID token's aud)")));
            }
        }
        for (key, set, needs) in [
            ("device_client_secret_file", self.device_client_secret_file.is_some(), dev.is_some()),
            ("device_client_key_file", self.device_client_key_file.is_some(), dev.is_some()),
            ("device_login", self.device_login, dev.is_some()),
        ] {
            if set && !needs {
                return Err((key, "set but there is no device_client_id".into()));
            }
        }
        for (key, set) in [
            ("ciba_client_secret_file", self.ciba_client_secret_file.is_some()),
            ("ciba_client_key_file", self.ciba_client_key_file.is_some()),
            ("ciba_login", self.ciba_login),
            ("ciba_confirm_code", self.ciba_confirm_code),
        ] {
            if set && ciba.is_none() {
                return Err((key, "set but there is no ciba_client_id".into()));
            }
        }
        if self.device_client_secret_file.is_some() && self.device_client_key_file.is_some() {
            return Err(("device_client_key_file", "set with device_client_secret_file: choose one".into()));
        }
        match (ciba, &self.ciba_client_secret_file, &self.ciba_client_key_file) {
            (Some(_), Some(_), Some(_)) => {
                return Err(("ciba_client_key_file", "set with ciba_client_secret_file: choose one".into()))
            }
            (Some(_), None, None) => {
                return Err((
                    "ciba_client_id",
                    "a CIBA client authenticates: set ciba_client_secret_file or ciba_client_key_file".into(),
                ))
            }
            _ => {}
        }
        if self.device_login && self.ciba_login {
            return Err(("ciba_login", "set with device_login: choose one".into()));
        }
        let hint = &self.ciba_login_hint;
        let placeholders = crate::claims::template_paths(hint);
        if !placeholders.iter().all(|p| *p == "user" || *p == "name") || placeholders.is_empty() {
            return Err((
                "ciba_login_hint",
                format!("{hint:?}: use {{user}} or {{name}} (and nothing else in braces)"),
            ));
        }
        Ok(())
    }

    /// The `login_hint` of a push login for the PAM user `user`.
    pub fn ciba_hint(&self, user: &str) -> String {
        let name = user.strip_prefix(self.name_prefix.as_str()).unwrap_or(user);
        self.ciba_login_hint.replace("{user}", user).replace("{name}", name)
    }

    /// Does the login name come from the `email` claim?
    pub fn name_from_email(&self) -> bool {
        match &self.username_template {
            Some(t) => crate::claims::template_paths(t).contains(&"email"),
            None => self.username_claim == "email",
        }
    }
}

fn yes() -> bool {
    true
}
fn default_identity_claim() -> String {
    "sub".into()
}

fn default_ciba_login_hint() -> String {
    "{name}".into()
}

fn default_device_scope() -> String {
    "openid profile".into()
}

fn default_algorithms() -> Vec<Alg> {
    vec![Alg::RS256, Alg::ES256]
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_leeway() -> u64 {
    60
}
fn default_max_lifetime() -> u64 {
    3600
}

impl<'de> Deserialize<'de> for Alg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("none") {
            return Err(serde::de::Error::custom("algorithm \"none\" is never allowed"));
        }
        Alg::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown algorithm {s:?} (one of: {})",
                crate::alg::ALL.map(|a| a.name()).join(", ")
            ))
        })
    }
}

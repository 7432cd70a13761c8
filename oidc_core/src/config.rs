//! The one config file: `/etc/pam-oidc/config.toml` (path overridable).
//!
//! Versioned (`version = 1`), every table `deny_unknown_fields`, and every error
//! names the file, the line and the key. Read by the PAM module on each
//! transaction and by helperd at start.

mod accounts;
mod aws;
mod backchannel;
mod issuer;
mod locks;
mod sessions;

pub use accounts::{Accounts, Groups, RoleAccount};
pub use aws::{Aws, Role as AwsRole, Source as AwsSource};
pub use backchannel::BackchannelLogout;
pub use issuer::{Issuer, MULTI_TENANT};
pub use locks::{parse_s3_url, Locks, Ssf, MAX_LIST_BYTES_CEILING};
use serde::Deserialize;
pub use sessions::{OnExpiry, OnRevoked, Sessions};
use std::path::{Path, PathBuf};

/// Where the module and helperd read the config unless told otherwise (`config=`, `--config`).
pub const DEFAULT_PATH: &str = "/etc/pam-oidc/config.toml";
/// The config format this build reads: `version` must equal it.
pub const VERSION: u32 = 1;
/// Hard ceiling for `pam.max_token_bytes`.
pub const MAX_TOKEN_BYTES_CEILING: usize = 64 * 1024;

/// The whole config file, parsed and validated ([`Config::load`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Must be [`VERSION`].
    pub version: u32,
    /// `[helperd]`: sockets, directories, limits, key fetching.
    #[serde(default)]
    pub helperd: Helperd,
    /// `[pam]`: what the module does inside sshd/sudo.
    #[serde(default)]
    pub pam: Pam,
    /// `[policy]`: host-wide group allow and deny lists.
    #[serde(default)]
    pub policy: Policy,
    /// `[[issuer]]`: the trusted IdPs; a token of any other is refused.
    #[serde(rename = "issuer", default)]
    pub issuers: Vec<Issuer>,
    /// `[accounts]`: how identities become POSIX users.
    #[serde(default)]
    pub accounts: Accounts,
    /// Moved to `[issuer.groups]` (group mapping is per issuer); kept only to say so.
    #[serde(default)]
    pub groups: Option<toml::Value>,
    /// `[[role_account]]`: local accounts tokens may log in as, by rule.
    #[serde(rename = "role_account", default)]
    pub role_accounts: Vec<RoleAccount>,
    /// `[aws]`: per-session AWS credentials.
    #[serde(default)]
    pub aws: Aws,
    /// `[sessions]`: what happens to a session when its token expires.
    #[serde(default)]
    pub sessions: Sessions,
    /// `[backchannel_logout]`: helperd's receiver of IdP logout tokens (off by default).
    #[serde(default)]
    pub backchannel_logout: BackchannelLogout,
    /// `[locks]`: the fleet lock list and Shared Signals polling.
    #[serde(default)]
    pub locks: Locks,
}

/// `[helperd]`: the daemon's sockets, directories, limits and key fetching.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Helperd {
    /// The public socket (0666): anyone may ask it for public things (status,
    /// a JWKS refresh, a session's own AWS credentials), with per-uid quotas.
    pub socket: PathBuf,
    /// The root-only socket (0600) the module and root's commands use: its
    /// queue is never shared with unprivileged peers. Default: `helperd-root.sock`
    /// beside `socket`.
    pub root_socket: Option<PathBuf>,
    /// Concurrent connections one non-root uid may hold on the public socket.
    pub max_connections_per_uid: usize,
    /// Device-code and push logins waiting at once, in all.
    pub max_device_flows: usize,
    /// Device-code and push logins waiting at once from one remote host (`PAM_RHOST`).
    pub max_device_flows_per_host: usize,
    /// After a push login that was not approved (denied, timed out), no new
    /// push to the same user for this many seconds (push fatigue).
    pub ciba_user_cooldown_secs: u64,
    /// JWKS (and discovery) cache, written by helperd, read by the module.
    pub cache_dir: PathBuf,
    /// helperd's state: the account store, the replay file and `replay.d`.
    pub state_dir: PathBuf,
    /// Connect + read deadline for each request to an IdP.
    pub fetch_timeout_secs: u64,
    /// At most one on-demand (unknown `kid`) JWKS fetch per issuer per window.
    pub jwks_refresh_min_interval_secs: u64,
    /// JWKS lifetime when the IdP sends no usable `Cache-Control: max-age`.
    pub jwks_ttl_default_secs: u64,
    /// Bounds applied to the IdP's `max-age`.
    pub jwks_ttl_min_secs: u64,
    /// Upper bound on the IdP's `max-age`, in seconds.
    pub jwks_ttl_max_secs: u64,
    /// Concurrent client connections served; more are refused.
    pub max_connections: usize,
    /// Cached keys past their expiry by more than this are not used (an
    /// attacker who cuts helperd off the IdP cannot keep a rotated-out key
    /// trusted forever); logins then fail with "issuer keys unavailable".
    pub jwks_max_stale_secs: u64,
    /// The NSS snapshot served by libnss_oidc.so.2 (which reads this default path).
    pub nss_snapshot: PathBuf,
}

impl Helperd {
    /// The root-only socket's path.
    pub fn root_socket(&self) -> PathBuf {
        self.root_socket.clone().unwrap_or_else(|| self.socket.with_file_name("helperd-root.sock"))
    }

    /// The sockets a caller should try, in order: root's first when it is root.
    pub fn sockets_for_caller(&self) -> Vec<PathBuf> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            vec![self.root_socket(), self.socket.clone()]
        } else {
            vec![self.socket.clone()]
        }
    }
}

impl Default for Helperd {
    fn default() -> Self {
        Helperd {
            socket: "/run/pam-oidc/helperd.sock".into(),
            root_socket: None,
            max_connections_per_uid: 8,
            max_device_flows: 32,
            max_device_flows_per_host: 4,
            ciba_user_cooldown_secs: 30,
            cache_dir: "/var/cache/pam-oidc".into(),
            state_dir: "/var/lib/pam-oidc".into(),
            fetch_timeout_secs: 5,
            jwks_refresh_min_interval_secs: 30,
            jwks_ttl_default_secs: 3600,
            jwks_ttl_min_secs: 300,
            jwks_ttl_max_secs: 86400,
            max_connections: 64,
            jwks_max_stale_secs: 86400,
            nss_snapshot: nss_snapshot::format::DEFAULT_PATH.into(),
        }
    }
}

/// `[pam]`: the module's prompt, limits and deadlines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pam {
    /// Hard deadline for any helperd call made from inside sshd/sudo.
    pub ipc_timeout_ms: u64,
    /// The conversation prompt for the token.
    pub prompt: String,
    /// Tokens longer than this are refused before any parsing.
    pub max_token_bytes: usize,
    /// How long a device-code login may take (keep it below sshd's LoginGraceTime).
    pub device_timeout_secs: u64,
    /// `max_age=` counts from `iat` when a token has no `auth_time` (off: such
    /// a token never satisfies `max_age`; a refreshed token has a new `iat`).
    pub max_age_uses_iat: bool,
    /// A login session's verified claims stand in for a fresh token (sudo
    /// without a prompt) only this long after the user authenticated; then
    /// every stack asks for a fresh token. 0: never reused.
    pub reuse_max_age_secs: u64,
}

impl Default for Pam {
    fn default() -> Self {
        Pam {
            ipc_timeout_ms: 3000,
            prompt: "OIDC token: ".into(),
            max_token_bytes: 16 * 1024,
            device_timeout_secs: 100,
            max_age_uses_iat: false,
            reuse_max_age_secs: 900,
        }
    }
}

/// `[policy]`: checked against a login's host group names (after mapping).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// If non-empty, the user must be in at least one of these groups.
    pub allowed_groups: Vec<String>,
    /// A member of any of these is refused, whatever else.
    pub denied_groups: Vec<String>,
}

/// A config error that names file, line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line of the fault, when known.
    pub line: Option<usize>,
    /// The key at fault, dotted (`issuer[0].audiences`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let cfg = Config::parse(&text, path)?;
        // Secret files: only their owner may read them, checked now so a
        // world-readable secret is a config error, not a login-time surprise.
        for (i, iss) in cfg.issuers.iter().enumerate() {
            for (leaf, f) in iss.private_files() {
                if let Err(message) = private_file(f) {
                    let key = format!("issuer[{i}].{leaf}");
                    return Err(ConfigError {
                        file: path.into(),
                        line: find_key_line(&text, &key),
                        key: Some(key),
                        message,
                    });
                }
            }
        }
        Ok(cfg)
    }

    /// Parse and validate config text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (None, None),
            };
            ConfigError { file: path.into(), line, key, message: e.message().trim().to_string() }
        })?;
        cfg.validate().map_err(|(key, message)| {
            let line = find_key_line(text, &key);
            ConfigError { file: path.into(), line, key: Some(key), message }
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if self.version != VERSION {
            return err("version", format!("unsupported config version {} (this build reads {VERSION})", self.version));
        }
        if self.pam.max_token_bytes == 0 || self.pam.max_token_bytes > MAX_TOKEN_BYTES_CEILING {
            return err("pam.max_token_bytes", format!("must be 1..={MAX_TOKEN_BYTES_CEILING}"));
        }
        if self.pam.ipc_timeout_ms == 0 || self.pam.ipc_timeout_ms > 60_000 {
            return err("pam.ipc_timeout_ms", "must be 1..=60000".into());
        }
        let h = &self.helperd;
        if h.jwks_ttl_min_secs > h.jwks_ttl_max_secs {
            return err("helperd.jwks_ttl_min_secs", "must not exceed jwks_ttl_max_secs".into());
        }
        if h.fetch_timeout_secs == 0 {
            return err("helperd.fetch_timeout_secs", "must be at least 1".into());
        }
        if !(1..=300).contains(&self.sessions.kill_after_secs) {
            return err("sessions.kill_after_secs", "must be 1..=300".into());
        }
        backchannel::validate(&self.backchannel_logout)?;
        if self.issuers.is_empty() {
            return err("issuer", "at least one [[issuer]] is required".into());
        }
        for (i, iss) in self.issuers.iter().enumerate() {
            let k = |f: &str| format!("issuer[{i}].{f}");
            check_url(&iss.url).or_else(|m| err(&k("url"), m))?;
            if let Some(u) = &iss.jwks_uri {
                check_url(u).or_else(|m| err(&k("jwks_uri"), m))?;
            }
            if self.issuers[..i].iter().any(|o| o.url == iss.url) {
                return err(&k("url"), format!("issuer {} configured twice", iss.url));
            }
            if iss.audiences.is_empty() || iss.audiences.iter().any(|a| a.is_empty()) {
                return err(&k("audiences"), "at least one non-empty audience is required".into());
            }
            if iss.algorithms.is_empty() {
                return err(&k("algorithms"), "at least one algorithm is required".into());
            }
            let hmac = iss.algorithms.iter().any(|a| a.is_hmac());
            if hmac && iss.hmac_secret_file.is_none() {
                return err(&k("algorithms"), "HS* algorithms need hmac_secret_file".into());
            }
            if !hmac && iss.hmac_secret_file.is_some() {
                return err(&k("hmac_secret_file"), "set but no HS* algorithm is allowed".into());
            }
            if iss.username_claim.is_empty() || iss.groups_claim.is_empty() || iss.identity_claim.is_empty() {
                return err(&k("username_claim"), "claim names must not be empty".into());
            }
            for a in &iss.aliases {
                if a.is_empty() || self.issuers.iter().enumerate().any(|(j, o)| o.url == *a || (j != i && o.is(a))) {
                    return err(&k("aliases"), format!("{a:?} is empty or already another issuer's"));
                }
            }
            if let Some(t) = &iss.username_template {
                let probe = serde_json::Map::new();
                if let Err(m) = crate::claims::render(t, &probe) {
                    if m.contains("unbalanced") || crate::claims::template_paths(t).iter().any(|p| p.is_empty()) {
                        return err(&k("username_template"), m);
                    }
                }
            }
            let p = &iss.name_prefix;
            if !p.is_empty()
                && (p.len() > 16
                    || !p.starts_with(|c: char| c.is_ascii_lowercase())
                    || !p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)))
            {
                return err(&k("name_prefix"), format!("{p:?}: [a-z][a-z0-9_.-]*, at most 16 bytes"));
            }
            if iss.user_accounts {
                let nested = |a: &str, b: &str| {
                    a == b || (!a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a)))
                };
                if let Some(o) =
                    self.issuers[..i].iter().find(|o| o.user_accounts && nested(&o.name_prefix, &iss.name_prefix))
                {
                    return err(
                        &k("name_prefix"),
                        format!(
                            "{} and {} would share login names: give each issuer that makes user accounts its own \
                             name_prefix, none a prefix of another (one may be empty), or set user_accounts = false",
                            o.url, iss.url
                        ),
                    );
                }
            }
            crate::claims::validate(&iss.require).or_else(|m| err(&k("require"), m))?;
            if let Some((_, tenant)) = MULTI_TENANT.iter().find(|(u, _)| iss.is(u)) {
                let exact = |c: &&str| iss.require.get(*c).is_some_and(crate::claims::Cond::is_exact);
                if !tenant.iter().any(exact) {
                    return err(
                        &k("require"),
                        format!(
                            "{} issues tokens to anyone: require one of {} with an exact value, no glob \
                             (e.g. require = {{ {} = \"your-org-id\" }})",
                            iss.url,
                            tenant.join(", "),
                            tenant[0]
                        ),
                    );
                }
            }
            accounts::validate_groups(&iss.groups).or_else(|(f, m)| err(&k(&format!("groups.{f}")), m))?;
            if iss.uid_claim.as_deref().is_some_and(str::is_empty) {
                return err(&k("uid_claim"), "must not be empty".into());
            }
            if iss.uid_claim.is_some()
                && (!self.accounts.prelogin_patterns.is_empty() || self.accounts.roster_file.is_some())
            {
                return err(
                    &k("uid_claim"),
                    "cannot be combined with pre-login resolution (the uid is not known before the token)".into(),
                );
            }
            iss.check_clients().or_else(|(key, m)| err(&k(key), m))?;
            if iss.max_token_lifetime_secs == 0 {
                return err(&k("max_token_lifetime_secs"), "must be at least 1".into());
            }
        }
        if self.groups.is_some() {
            return err(
                "groups",
                "[groups] moved into each issuer: write it as [issuer.groups] after that [[issuer]] \
                 (a group of one issuer never grants another's)"
                    .into(),
            );
        }
        accounts::validate(&self.accounts, &self.role_accounts, &self.issuers)?;
        aws::validate(&self.aws, &self.issuers)?;
        locks::validate(&self.locks, &self.issuers)
    }

    /// The issuer that owns a host name (user or group): of the issuers with a
    /// name space (those that make user accounts, and those with a
    /// `name_prefix`), the one with the longest prefix the name starts with.
    /// A name is only ever admitted or served for tokens of its owner.
    pub fn name_owner(&self, name: &str) -> Option<&Issuer> {
        self.issuers
            .iter()
            .filter(|i| i.owns_names() && name.starts_with(i.name_prefix.as_str()))
            .max_by_key(|i| i.name_prefix.len())
    }

    /// The issuer that signs with `iss` (its URL or an alias).
    pub fn issuer(&self, iss: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.is(iss))
    }

    /// The clock leeway of an issuer (0 for one no longer configured).
    pub fn leeway(&self, iss: &str) -> u64 {
        self.issuer(iss).map_or(0, |i| i.leeway_secs)
    }

    /// The last moment a token of `iss` that expires at `exp` is accepted
    /// (`exp` plus the issuer's leeway): how long its use is remembered.
    pub fn accepted_until(&self, iss: &str, exp: i64) -> i64 {
        exp.saturating_add(i64::try_from(self.leeway(iss)).unwrap_or(i64::MAX))
    }

    /// When a session of `iss` whose token expires at `exp` is ended
    /// (`[sessions]`, the issuer's `session_on_expiry`); `None`: it is kept.
    pub fn session_ends_at(&self, iss: &str, exp: i64) -> Option<i64> {
        let policy = self.issuer(iss).and_then(|i| i.session_on_expiry).unwrap_or(self.sessions.on_expiry);
        self.session_ends_at_if(policy == OnExpiry::End, exp)
    }

    /// `exp` + `[sessions] grace_secs` if `end`.
    pub fn session_ends_at_if(&self, end: bool, exp: i64) -> Option<i64> {
        end.then(|| exp.saturating_add(i64::try_from(self.sessions.grace_secs).unwrap_or(i64::MAX)))
    }

    /// Is `name` a `[[role_account]]`? (Only role logins can produce a
    /// session of one: no user may take a role account's name.)
    pub fn is_role_account(&self, name: &str) -> bool {
        self.role_accounts.iter().any(|r| r.name == name)
    }

    /// A role account's account-wide switch (`aws_credentials`,
    /// `reuse_claims`): on only if every rule for the name turns it on —
    /// rules are per issuer, and a login through one rule must never get what
    /// another grants. `None`: not a role account.
    pub fn role_switch(&self, name: &str, on: impl Fn(&RoleAccount) -> bool) -> Option<bool> {
        let mut rules = self.role_accounts.iter().filter(|r| r.name == name).peekable();
        rules.peek()?;
        Some(rules.all(on))
    }
}

/// The module arguments pam_oidc.so accepts (`name` or `name=`): what
/// `helperd doctor` checks every stack against (pam_oidc's parser refuses
/// anything else at login time; a test keeps the two in step).
pub const PAM_ARGUMENTS: &[&str] = &[
    "config=",
    "use_first_pass",
    "try_first_pass",
    "require_group=",
    "max_age=",
    "acr=",
    "step_up",
    "end_at_expiry",
    "device_code",
    "device_code=",
    "token",
    "debug",
];

/// https always; http only for a loopback host (local test IdPs).
pub fn check_url(u: &str) -> Result<(), String> {
    if let Some(rest) = u.strip_prefix("https://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains(['@', '\\']) {
            return Err(format!("{u:?}: empty host, userinfo or backslash in the authority"));
        }
        return Ok(());
    }
    if let Some(rest) = u.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains(['@', '\\']) {
            return Err(format!("{u:?}: userinfo or backslash in the authority"));
        }
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
            return Ok(());
        }
    }
    Err(format!("{u:?} must be an https:// URL (http:// only for a loopback test IdP)"))
}

/// Line (1-based) and `table.key` for a byte offset in the TOML text.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string());
    let key = line.split_once('=').map(|(k, _)| k.trim().to_string()).filter(|k| !k.is_empty());
    let full = match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, k) => k,
        (Some(t), None) => Some(t),
    };
    (Some(line_no), full)
}

/// Best-effort line of `a.b[i].key` for semantic errors: the first line that
/// assigns the last path segment (after the table of the right index).
/// A regular file (not a symlink) no one but its owner — root, or whoever
/// runs this — may read or write.
fn private_file(f: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::symlink_metadata(f).map_err(|e| format!("{}: {e}", f.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.file_type().is_file() {
        return Err(format!("{}: not a regular file", f.display()));
    }
    if m.uid() != 0 && m.uid() != me {
        return Err(format!("{}: owned by uid {}, not root; chown root", f.display(), m.uid()));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!("{}: group or others may read it (mode {:o}); chmod 600", f.display(), m.mode() & 0o777));
    }
    Ok(())
}

fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let (table, index) = match key.split_once('[') {
        Some((t, rest)) => (t, rest.split(']').next().and_then(|n| n.parse::<usize>().ok())),
        None => (key.split('.').next().unwrap_or(""), None),
    };
    let mut seen = 0usize;
    let mut in_table = index.is_none() && !key.contains('.');
    for (n, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']').trim();
            in_table = name == table
                && index.is_none_or(|i| {
                    seen += 1;
                    seen == i + 1
                });
            if in_table && leaf == table {
                return Some(n + 1);
            }
            continue;
        }
        if in_table {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == leaf {
                    return Some(n + 1);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;

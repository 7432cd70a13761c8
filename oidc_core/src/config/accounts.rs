//! `[accounts]`, `[issuer.groups]` and `[[role_account]]`: how verified
//! identities become POSIX users and groups (served by nss_oidc).

use crate::claims::Conditions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default ranges (docs/accounts-nss.md "uids"): below 2^31; above useradd's subordinate-id
/// range (100000–600100000) and SSSD-style small ranges; below kanidm's
/// 0x70000000–0x7fffffff and systemd's foreign range. They lie in the upper
/// part of systemd's container range (524288–1879048191), which only
/// `systemd-nspawn --private-users=pick` allocates from.
pub(super) const UID_MIN: u32 = 0x4000_0000; // 1073741824
pub(super) const UID_MAX: u32 = 0x5FFF_FFFF; // 1610612735
pub(super) const GID_MIN: u32 = 0x6000_0000; // 1610612736
pub(super) const GID_MAX: u32 = 0x6FFF_FFFF; // 1879048191

/// `[accounts]`: names, uids, home and shell of OIDC users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Accounts {
    /// Root-only file holding the fleet's secret id key (32 hex digits): every
    /// host with the same key and range gives a user the same uid, and nobody
    /// without it can steer a chosen name onto someone else's uid.
    /// `helperd id-key generate` writes one.
    pub id_key_file: PathBuf,
    /// Replaced by `id_key_file` (the old key was public); kept only to say so.
    pub id_hash_key: Option<String>,
    /// Lowest uid the keyed hash gives and a uid claim may ask for (pins may lie outside).
    pub uid_min: u32,
    /// Highest uid of that range; it must not overlap the gid range.
    pub uid_max: u32,
    /// Lowest gid an OIDC host group gets.
    pub gid_min: u32,
    /// Highest gid an OIDC host group gets.
    pub gid_max: u32,
    /// Moved to `[[issuer]] uid_claim` (only an issuer trusted to assign
    /// uids may); kept only to say so.
    pub uid_claim: Option<String>,
    /// Login name → uid, overriding everything else.
    pub pinned_uids: BTreeMap<String, u32>,
    /// `{name}` is replaced by the login name.
    pub home: String,
    /// Login shell of OIDC users (an absolute path).
    pub shell: String,
    /// Claim for the GECOS field (display name); empty if absent.
    pub gecos_claim: String,
    /// Login names matching one of these resolve before the first login, with
    /// the uid they will keep. Namespaced only: `prefix*` or `*suffix` whose
    /// fixed part has at least 3 characters and a `-`, `.` or `_` (never `*`,
    /// never a name a package could create). Empty: none.
    pub prelogin_patterns: Vec<String>,
    /// One login name per line; these resolve before the first login.
    pub roster_file: Option<PathBuf>,
    /// Where local accounts are read from (never shadowed, never reused).
    pub passwd_file: PathBuf,
    /// Local groups, read like `passwd_file`.
    pub group_file: PathBuf,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            id_key_file: nss_snapshot::format::DEFAULT_ID_KEY_FILE.into(),
            id_hash_key: None,
            uid_min: UID_MIN,
            uid_max: UID_MAX,
            gid_min: GID_MIN,
            gid_max: GID_MAX,
            uid_claim: None,
            pinned_uids: BTreeMap::new(),
            home: "/home/{name}".into(),
            shell: "/bin/bash".into(),
            gecos_claim: "name".into(),
            prelogin_patterns: vec![],
            roster_file: None,
            passwd_file: "/etc/passwd".into(),
            group_file: "/etc/group".into(),
        }
    }
}

/// `[issuer.groups]`: which of an issuer's IdP groups become host groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Groups {
    /// Only IdP groups starting with this prefix become host groups; it is stripped.
    pub prefix: String,
    /// If non-empty, only these (after the prefix) become host groups.
    pub allow: Vec<String>,
    /// IdP group (exact) → host group name. The only way onto a local,
    /// reserved or privileged group (e.g. `"ops-admins" = "sudo"`, served with
    /// `group: files [SUCCESS=merge] oidc`).
    pub map: BTreeMap<String, String>,
    /// Unmapped groups become host groups (names that are already safe,
    /// lower-case host names only; others are dropped, never folded).
    /// `false`: only `map` entries do.
    pub auto: bool,
}

impl Default for Groups {
    fn default() -> Self {
        Groups { prefix: String::new(), allow: vec![], map: BTreeMap::new(), auto: true }
    }
}

/// Tokens of `issuer` that meet `require` (and, if set, are in the host group
/// `group`) may log in as the local account `name`. Scoped to its issuer: a
/// group or claim of another issuer never grants it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAccount {
    /// The local account (a valid login name).
    pub name: String,
    /// The issuer URL whose tokens this rule is for.
    pub issuer: Option<String>,
    /// A host group (after mapping) the token's holder must be in.
    #[serde(default)]
    pub group: Option<String>,
    /// Claim conditions (e.g. `repository`, `ref`, `environment`).
    #[serde(default)]
    pub require: Conditions,
    /// Sessions of this account get AWS credentials from `[[aws.role]]` rules.
    /// Off by default: many people share the account's uid, and any process of
    /// that uid (another person's session too) can reach a session's processes.
    #[serde(default)]
    pub aws_credentials: bool,
    /// sudo inside a session of this account may reuse the session's verified
    /// claims (`pam.reuse_max_age_secs`). Off by default, for the same reason:
    /// another holder of the uid could borrow them; each sudo then asks for a token.
    #[serde(default)]
    pub reuse_claims: bool,
}

impl RoleAccount {
    /// Does a verified token of `issuer` with these claims and host groups get this account?
    pub fn grants(
        &self,
        issuer: &str,
        claims: &serde_json::Map<String, serde_json::Value>,
        host_groups: &[String],
    ) -> Result<(), String> {
        if self.issuer.as_deref() != Some(issuer) {
            return Err(format!("its rule is for issuer {}", self.issuer.as_deref().unwrap_or("?")));
        }
        if let Some(g) = &self.group {
            if !host_groups.contains(g) {
                return Err(format!("not in group {g}"));
            }
        }
        crate::claims::check(&self.require, claims)
    }
}

/// Is a pre-login pattern namespaced (`dev-*`, `*.oidc`)?
pub(super) fn check_prelogin_pattern(p: &str) -> Result<(), String> {
    let fixed = match (p.strip_suffix('*'), p.strip_prefix('*')) {
        (Some(f), None) | (None, Some(f)) => f,
        _ => return Err(format!("{p:?}: use prefix* or *suffix (one `*`, at one end)")),
    };
    if fixed.len() < 3
        || fixed.len() > 24
        || fixed.contains(['*', '?'])
        || !fixed.contains(['-', '.', '_'])
        || !fixed.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    {
        return Err(format!(
            "{p:?}: the fixed part must be 3-24 characters of [a-z0-9_.-] with a '-', '.' or '_' \
             (a namespace no package's system user falls into)"
        ));
    }
    if p.ends_with('*') && (fixed.starts_with('_') || nss_snapshot::format::is_reserved(fixed.as_bytes())) {
        return Err(format!("{p:?}: the prefix is a reserved name space"));
    }
    Ok(())
}

pub(super) fn validate_groups(g: &Groups) -> Result<(), (String, String)> {
    for (from, to) in &g.map {
        if from.is_empty() || from.len() > 256 {
            return Err(("map".into(), "an IdP group name must be 1-256 bytes".into()));
        }
        crate::policy::check_login_name(to).map_err(|m| ("map".into(), format!("target {m}")))?;
    }
    Ok(())
}

pub(super) fn validate(a: &Accounts, roles: &[RoleAccount], issuers: &[super::Issuer]) -> Result<(), (String, String)> {
    let err = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
    let ok_range = |lo: u32, hi: u32| lo >= 1000 && lo <= hi && hi < 0x8000_0000;
    if !ok_range(a.uid_min, a.uid_max) {
        return err("accounts.uid_min", "need 1000 <= uid_min <= uid_max < 2^31");
    }
    if !ok_range(a.gid_min, a.gid_max) {
        return err("accounts.gid_min", "need 1000 <= gid_min <= gid_max < 2^31");
    }
    if a.uid_min <= a.gid_max && a.gid_min <= a.uid_max {
        return err("accounts.gid_min", "the uid and gid ranges overlap (user private groups use the uid as gid)");
    }
    if a.id_hash_key.is_some() {
        return err(
            "accounts.id_hash_key",
            "replaced by id_key_file: uids now come from a secret fleet key (helperd id-key generate); \
             accounts already created keep their uids",
        );
    }
    if !a.id_key_file.is_absolute() {
        return err("accounts.id_key_file", "must be an absolute path");
    }
    if a.uid_claim.is_some() {
        return err(
            "accounts.uid_claim",
            "moved to [[issuer]] uid_claim: only the issuer trusted to assign uids may set them \
             (a second issuer's uidNumber could aim at anyone's uid)",
        );
    }
    for (name, uid) in &a.pinned_uids {
        crate::policy::check_login_name(name).or_else(|m| err("accounts.pinned_uids", &m))?;
        if *uid < 1000 || *uid >= 0x8000_0000 {
            return err("accounts.pinned_uids", &format!("{name} = {uid}: need 1000 <= uid < 2^31"));
        }
    }
    if !a.home.starts_with('/') || !a.shell.starts_with('/') {
        return err("accounts.home", "home and shell must be absolute paths");
    }
    for p in &a.prelogin_patterns {
        check_prelogin_pattern(p).or_else(|m| err("accounts.prelogin_patterns", &m))?;
    }
    for (i, r) in roles.iter().enumerate() {
        let k = |f: &str| format!("role_account[{i}].{f}");
        crate::policy::check_login_name(&r.name).or_else(|m| err(&k("name"), &m))?;
        match &r.issuer {
            None => {
                return err(&k("issuer"), "required: the issuer whose tokens this rule is for (rules are per issuer)")
            }
            Some(u) if !issuers.iter().any(|iss| iss.url == *u) => {
                return err(&k("issuer"), &format!("{u} is not a configured [[issuer]] url"));
            }
            Some(_) => {}
        }
        if r.group.as_deref().is_some_and(str::is_empty) {
            return err(&k("group"), "must not be empty");
        }
        if r.group.is_none() && r.require.is_empty() {
            return err(&k("require"), "a rule needs a group or claim conditions (else every token would match)");
        }
        crate::claims::validate(&r.require).or_else(|m| err(&k("require"), &m))?;
    }
    Ok(())
}

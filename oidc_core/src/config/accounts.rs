//! `[accounts]`, `[groups]` and `[[role_account]]`: how verified identities
//! become POSIX users and groups (served by nss_oidc).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default ranges, chosen against systemd's UIDS-GIDS.md: above the container
/// range (524288–1879048191), below the "foreign" range (2147352576–) and 2^31.
pub const UID_MIN: u32 = 0x7000_0000; // 1879048192
pub const UID_MAX: u32 = 0x77FF_FFFF; // 2013265919
pub const GID_MIN: u32 = 0x7800_0000; // 2013265920
pub const GID_MAX: u32 = 0x7FFD_FFFF; // 2147352575

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Accounts {
    /// Fleet-wide key of the deterministic id hash: every host with the same
    /// key and range gives a user the same uid. Not a secret.
    pub id_hash_key: String,
    pub uid_min: u32,
    pub uid_max: u32,
    pub gid_min: u32,
    pub gid_max: u32,
    /// Take the uid from this claim (e.g. `uidNumber`) instead of the hash.
    pub uid_claim: Option<String>,
    /// Login name → uid, overriding everything else.
    pub pinned_uids: BTreeMap<String, u32>,
    /// `{name}` is replaced by the login name.
    pub home: String,
    pub shell: String,
    /// Claim for the GECOS field (display name); empty if absent.
    pub gecos_claim: String,
    /// Login names matching one of these globs (`*`, `?`) resolve before the
    /// first login, with the uid they will keep. Empty: none.
    pub prelogin_patterns: Vec<String>,
    /// One login name per line; these resolve before the first login.
    pub roster_file: Option<PathBuf>,
    /// Where local accounts are read from (never shadowed, never reused).
    pub passwd_file: PathBuf,
    pub group_file: PathBuf,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            id_hash_key: "pam-oidc".into(),
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Groups {
    /// Only IdP groups starting with this prefix become NSS groups; it is stripped.
    pub prefix: String,
    /// If non-empty, only these (after the prefix) become NSS groups.
    pub allow: Vec<String>,
    /// IdP group → NSS group name. Mapping onto an existing local group (e.g.
    /// `ops-admins = "sudo"`) adds members to it with `group: files [SUCCESS=merge] oidc`.
    pub map: BTreeMap<String, String>,
}

/// A token whose groups include `group` may log in as the local account `name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAccount {
    pub name: String,
    pub group: String,
}

pub(super) fn validate(a: &Accounts, g: &Groups, roles: &[RoleAccount]) -> Result<(), (String, String)> {
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
    if a.id_hash_key.is_empty() {
        return err("accounts.id_hash_key", "must not be empty");
    }
    if a.uid_claim.is_some() && (!a.prelogin_patterns.is_empty() || a.roster_file.is_some()) {
        return err(
            "accounts.uid_claim",
            "cannot be combined with pre-login resolution (the uid is not known before the token)",
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
        if p.is_empty()
            || p.len() > 64
            || p.chars().any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-*?".contains(c)))
        {
            return err("accounts.prelogin_patterns", &format!("{p:?}: use [a-z0-9_.-] with * and ?"));
        }
    }
    for (from, to) in &g.map {
        crate::policy::check_group_name(from).or_else(|m| err("groups.map", &m))?;
        crate::policy::check_login_name(to).or_else(|m| err("groups.map", &format!("target {m}")))?;
    }
    for (i, r) in roles.iter().enumerate() {
        crate::policy::check_login_name(&r.name).or_else(|m| err(&format!("role_account[{i}].name"), &m))?;
        if r.group.is_empty() {
            return err(&format!("role_account[{i}].group"), "must not be empty");
        }
    }
    Ok(())
}

//! Accounts: verified identities → POSIX users and groups. Pure: the store,
//! the local account database and `now` are passed in; helperd does the I/O.
//!
//! Rules (ARCHITECTURE.md "Identity model"): an identity is (issuer, value of
//! the issuer's identity claim) and keeps the first name it logged in with; a
//! name belongs to the issuer whose name space it is in, and to the first
//! identity of that issuer to hold it; no name a token makes is reserved or
//! known to the host already; uids come from a pin, a claim or the keyed fleet
//! hash and never equal a local uid, 0, or another identity's uid — a
//! collision refuses the later one. A host group is exactly one IdP group of
//! one issuer (or an explicit map entry).

mod ids;
mod local;
mod mapping;

pub use ids::{gid_for, new_uid, uid_for, UidError};
pub use local::LocalDb;
pub use mapping::{account_for, deny_probes, host_groups, map_groups, HostGroup, INCOMPLETE};

use crate::config::{Config, Issuer};
use nss_snapshot::format::{skeleton, Group, IdKey, Prelogin, User};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The store format's version (`v`); [`Store::load`] refuses any other.
pub const STORE_VERSION: u32 = 1;
/// The store file in `helperd.state_dir` (0600 root; helperd writes it, the
/// module reads it only when helperd is unreachable).
pub const STORE_FILE: &str = "accounts.json";
/// `last_login` is recorded to this resolution: a returning user's login
/// changes nothing on disk unless the recorded time is older than this, so the
/// common login costs no fsync (helperd writes the store only on a change).
pub const LAST_LOGIN_RESOLUTION_SECS: i64 = 300;

/// An OIDC account: one identity of one issuer, with the name and uid it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    /// The issuer's configured URL.
    pub issuer: String,
    /// The identity: the value of the issuer's `identity_claim` (`sub` by default).
    pub sub: String,
    /// The login name: an identity keeps the first it logged in with (`helperd rebind`
    /// moves a name to another identity).
    pub name: String,
    /// Fixed at the first login; also the gid of the user's private group.
    pub uid: u32,
    /// GECOS field from the latest login's `accounts.gecos_claim` (no `:`, `,` or control characters).
    pub gecos: String,
    /// NSS group names (after mapping) from the latest login.
    pub groups: Vec<String>,
    /// First login (Unix seconds).
    pub first_login: i64,
    /// Latest login (Unix seconds), to [`LAST_LOGIN_RESOLUTION_SECS`].
    pub last_login: i64,
}

/// A host group OIDC users are members of: an OIDC group, or a local one they join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup {
    /// The NSS group name (after mapping).
    pub name: String,
    /// The keyed hash of the name, or the local group's gid when `local`.
    pub gid: u32,
    /// An existing local group that OIDC members are added to (merge).
    pub local: bool,
    /// The issuer whose group this host group is (empty in stores written
    /// before issuer binding: bound by the next login that brings it).
    #[serde(default)]
    pub issuer: String,
}

/// helperd's account store ([`STORE_FILE`]): every OIDC account and host group ever admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    /// Format version, [`STORE_VERSION`].
    pub v: u32,
    /// The accounts; no two share a name, an identity or a uid.
    pub users: Vec<StoredUser>,
    /// The host groups; no two share a name or a gid.
    pub groups: Vec<StoredGroup>,
}

impl Default for Store {
    fn default() -> Self {
        Store { v: STORE_VERSION, users: vec![], groups: vec![] }
    }
}

/// What pam_oidc reports after a verified login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginEvent {
    /// The issuer's configured URL.
    pub issuer: String,
    /// The identity: the value of the issuer's `identity_claim` (`sub` by default).
    pub sub: String,
    /// The login name the verified token maps to.
    pub name: String,
    /// Raw IdP groups from the token.
    pub groups: Vec<String>,
    /// The issuer's `uid_claim`, when configured and the token has a valid one.
    pub uid_claim: Option<u32>,
    /// GECOS field from `accounts.gecos_claim`: at most 128 characters, no `:`,
    /// `,` or control characters; empty if absent.
    pub gecos: String,
}

/// A login [`Store::admit`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The account's uid.
    pub uid: u32,
    /// The primary gid: the user's private group, equal to `uid`.
    pub gid: u32,
    /// (NSS name, gid) of the supplementary groups.
    pub groups: Vec<(String, u32)>,
    /// The account was created by this login.
    pub new: bool,
    /// Groups skipped and why (logged by helperd).
    pub warnings: Vec<String>,
}

/// Why [`Store::admit`] refused a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, as the same code helperd sends in [`crate::Response::Refused`].
    pub code: crate::ipc::RefusalCode,
    /// The details, for the log (names, identities, uids).
    pub reason: String,
}

fn refuse(code: crate::ipc::RefusalCode, reason: String) -> Refusal {
    Refusal { code, reason }
}

impl Store {
    /// Read a store file; a missing file is an empty store.
    pub fn load(path: &std::path::Path) -> Result<Store, String> {
        match std::fs::read(path) {
            Ok(b) => {
                let s: Store = serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?;
                if s.v != STORE_VERSION {
                    return Err(format!("{}: store version {} (want {STORE_VERSION})", path.display(), s.v));
                }
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The account of identity `sub` of `issuer`, if it has logged in here.
    pub fn find(&self, issuer: &str, sub: &str) -> Option<&StoredUser> {
        self.users.iter().find(|u| u.issuer == issuer && u.sub == sub)
    }

    /// Admit a verified login: allocate or confirm its uid and groups, or refuse.
    pub fn admit(
        &mut self,
        ev: &LoginEvent,
        cfg: &Config,
        local: &LocalDb,
        key: Option<&IdKey>,
        now: i64,
    ) -> Result<Admitted, Refusal> {
        let a = &cfg.accounts;
        if local.users.contains_key(&ev.name) {
            return Err(refuse(
                crate::ipc::RefusalCode::LocalAccount,
                format!("{} is a local account; OIDC never shadows it", ev.name),
            ));
        }
        let Some(issuer) = cfg.issuer(&ev.issuer) else {
            return Err(refuse(
                crate::ipc::RefusalCode::UntrustedIssuer,
                format!("{} is not a configured issuer", ev.issuer),
            ));
        };
        match cfg.name_owner(&ev.name) {
            Some(owner) if owner.url == issuer.url && issuer.user_accounts => {}
            owner => {
                return Err(refuse(
                    crate::ipc::RefusalCode::NameOfAnotherIssuer,
                    format!(
                        "{} is in the name space of {}; refused for a token of {}",
                        ev.name,
                        owner.map_or("no issuer that makes user accounts", |o| o.url.as_str()),
                        ev.issuer
                    ),
                ));
            }
        }
        let existing = self.users.iter().position(|u| u.issuer == ev.issuer && u.sub == ev.sub);
        if let Some(i) = existing {
            if self.users[i].name != ev.name {
                return Err(refuse(
                    crate::ipc::RefusalCode::IdentityRenamed,
                    format!(
                        "identity {} already holds the name {}; it cannot also log in as {}",
                        ev.sub, self.users[i].name, ev.name
                    ),
                ));
            }
        }
        if let Some(holder) =
            self.users.iter().find(|u| u.name == ev.name && !(u.issuer == ev.issuer && u.sub == ev.sub))
        {
            return Err(refuse(
                crate::ipc::RefusalCode::NameTaken,
                format!(
                    "{} belongs to identity {} of {}; refused for {}; `helperd rebind` moves it",
                    ev.name, holder.sub, holder.issuer, ev.sub
                ),
            ));
        }
        if existing.is_none() {
            if let Some(why) = local.name_clash(&ev.name) {
                return Err(refuse(crate::ipc::RefusalCode::ReservedName, why));
            }
            if self.groups.iter().any(|g| g.name == ev.name) {
                return Err(refuse(
                    crate::ipc::RefusalCode::ReservedName,
                    format!("{} is a host group's name", ev.name),
                ));
            }
            if cfg.is_role_account(&ev.name) {
                return Err(refuse(
                    crate::ipc::RefusalCode::ReservedName,
                    format!("{} is a role account ([[role_account]])", ev.name),
                ));
            }
            let sk = skeleton(ev.name.as_bytes());
            if let Some(o) = self.users.iter().find(|u| skeleton(u.name.as_bytes()) == sk) {
                return Err(refuse(
                    crate::ipc::RefusalCode::ReservedName,
                    format!("{} differs from the OIDC account {} only in case or punctuation", ev.name, o.name),
                ));
            }
        }
        let uid = match existing {
            Some(i) => self.users[i].uid,
            None => {
                let uid = match new_uid(a, key, ev) {
                    Ok(u) => u,
                    Err(UidError::OutOfRange(c)) => {
                        return Err(refuse(
                            crate::ipc::RefusalCode::UidOutOfRange,
                            format!("uid claim {c} outside {}..={}", a.uid_min, a.uid_max),
                        ));
                    }
                    Err(UidError::NoKey) => {
                        return Err(refuse(
                            crate::ipc::RefusalCode::AccountsUnavailable,
                            "no usable id key: a new account's uid cannot be computed (helperd doctor)".into(),
                        ));
                    }
                };
                if uid == 0 || local.uids.contains(&uid) || local.gids.contains(&uid) {
                    return Err(refuse(
                        crate::ipc::RefusalCode::UidCollision,
                        format!("uid {uid} for {} is a local uid or gid", ev.name),
                    ));
                }
                if let Some(h) = self.users.iter().find(|u| u.uid == uid) {
                    return Err(refuse(
                        crate::ipc::RefusalCode::UidCollision,
                        format!("uid {uid} for {} is held by {}; pin another in accounts.pinned_uids", ev.name, h.name),
                    ));
                }
                if self.groups.iter().any(|g| g.gid == uid) {
                    return Err(refuse(
                        crate::ipc::RefusalCode::UidCollision,
                        format!("uid {uid} for {} is an OIDC group's gid", ev.name),
                    ));
                }
                uid
            }
        };
        let (mapped, mut warnings) = map_groups(&ev.groups, issuer, cfg);
        let mut groups = vec![];
        let user_uids: HashSet<u32> = self.users.iter().map(|u| u.uid).chain([uid]).collect();
        for hg in mapped {
            let name = hg.name;
            if let Some(&gid) = local.groups.get(&name) {
                if !hg.explicit {
                    warnings.push(format!("group {name} skipped: a local group of that name exists (extend it only with an explicit groups.map entry)"));
                    continue;
                }
                match self.groups.iter_mut().find(|g| g.name == name) {
                    Some(g) if g.local => {}
                    Some(g) => *g = StoredGroup { name: name.clone(), gid, local: true, issuer: String::new() },
                    None => {
                        self.groups.push(StoredGroup { name: name.clone(), gid, local: true, issuer: String::new() })
                    }
                }
                groups.push((name, gid));
                continue;
            }
            if !hg.explicit {
                if let Some(why) = local.name_clash(&name) {
                    warnings.push(format!("group {name} skipped: {why}"));
                    continue;
                }
            }
            if local.users.contains_key(&name) || (self.users.iter().any(|u| u.name == name) || name == ev.name) {
                warnings.push(format!("group {name} skipped: the name is a user's (private group)"));
                continue;
            }
            if let Some(g) = self.groups.iter_mut().find(|g| g.name == name) {
                if !g.local && !g.issuer.is_empty() && g.issuer != ev.issuer {
                    warnings.push(format!(
                        "group {name} skipped: that host group is {}'s; a group of another issuer never joins it",
                        g.issuer
                    ));
                    continue;
                }
                if g.issuer.is_empty() && !g.local {
                    g.issuer = ev.issuer.clone();
                }
                groups.push((name, g.gid));
                continue;
            }
            let Some(key) = key else {
                warnings.push(format!("group {name} skipped: no usable id key for its gid"));
                continue;
            };
            let gid = gid_for(a, key, &name);
            if local.gids.contains(&gid) || self.groups.iter().any(|g| g.gid == gid) || user_uids.contains(&gid) {
                warnings.push(format!("group {name} skipped: gid {gid} collides with another group"));
                continue;
            }
            self.groups.push(StoredGroup { name: name.clone(), gid, local: false, issuer: ev.issuer.clone() });
            groups.push((name, gid));
        }
        let names: Vec<String> = groups.iter().map(|(n, _)| n.clone()).collect();
        let new = existing.is_none();
        match existing {
            Some(i) => {
                let u = &mut self.users[i];
                u.groups = names;
                u.gecos = ev.gecos.clone();
                if now.saturating_sub(u.last_login) >= LAST_LOGIN_RESOLUTION_SECS || now < u.last_login {
                    u.last_login = now;
                }
            }
            None => self.users.push(StoredUser {
                issuer: ev.issuer.clone(),
                sub: ev.sub.clone(),
                name: ev.name.clone(),
                uid,
                gecos: ev.gecos.clone(),
                groups: names,
                first_login: now,
                last_login: now,
            }),
        }
        Ok(Admitted { uid, gid: uid, groups, new, warnings })
    }

    /// The host groups a token of `iss` gets for a role-account login (which
    /// adds nobody to NSS groups): [`host_groups`], minus names that are
    /// users' and host groups another issuer's tokens make.
    pub fn servable_groups(
        &self,
        iss: &Issuer,
        raw: &[String],
        cfg: &Config,
        local: &LocalDb,
    ) -> (Vec<String>, Vec<String>) {
        let (names, mut warnings) = host_groups(raw, iss, cfg, local);
        let mut out = vec![];
        for n in names {
            if local.users.contains_key(&n) || self.users.iter().any(|u| u.name == n) {
                warnings.push(format!("group {n} skipped: the name is a user's (private group)"));
            } else if self.groups.iter().any(|g| g.name == n && !g.local && !g.issuer.is_empty() && g.issuer != iss.url)
            {
                warnings.push(format!("group {n} skipped: that host group is another issuer's"));
            } else {
                out.push(n);
            }
        }
        (out, warnings)
    }

    /// Move the name `name` to another identity (an IdP app re-created, a
    /// pairwise `sub` changed): it keeps its uid, home and groups.
    pub fn rebind(&mut self, name: &str, issuer: &str, sub: &str) -> Result<String, Refusal> {
        if let Some(other) = self.users.iter().find(|u| u.issuer == issuer && u.sub == sub && u.name != name) {
            return Err(refuse(
                crate::ipc::RefusalCode::IdentityHoldsAnotherName,
                format!("identity {sub} of {issuer} holds {}", other.name),
            ));
        }
        let Some(u) = self.users.iter_mut().find(|u| u.name == name) else {
            return Err(refuse(crate::ipc::RefusalCode::NoSuchAccount, format!("{name} is not an OIDC account here")));
        };
        let before = format!("{} {}", u.issuer, u.sub);
        u.issuer = issuer.to_string();
        u.sub = sub.to_string();
        Ok(format!("{name} (uid {}) moved from identity {before} to {issuer} {sub}", u.uid))
    }

    /// Everything the host serves: store users (with private groups), the
    /// roster and pinned names (pre-login records), and OIDC groups with members.
    /// Returns users, groups, the pre-login rule and warnings for the log.
    pub fn snapshot_parts(
        &self,
        cfg: &Config,
        local: &LocalDb,
        roster: &[String],
        key: Option<&IdKey>,
    ) -> (Vec<User>, Vec<Group>, Option<Prelogin>, Vec<String>) {
        let a = &cfg.accounts;
        let gid_of: HashMap<&str, u32> = self.groups.iter().map(|g| (g.name.as_str(), g.gid)).collect();
        let home = |n: &str| a.home.replace("{name}", n);
        let mut warnings = vec![];
        let mut users = vec![];
        let mut groups = vec![];
        let mut taken_uid: HashSet<u32> = HashSet::new();
        let mut taken_name: HashSet<String> = HashSet::new();
        let mut members: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for u in &self.users {
            if local.users.contains_key(&u.name) || local.uids.contains(&u.uid) {
                warnings.push(format!("{} (uid {}) not served: now a local account or uid", u.name, u.uid));
                continue;
            }
            let gids = u.groups.iter().filter_map(|g| gid_of.get(g.as_str()).copied()).collect();
            for g in &u.groups {
                members.entry(g.as_str()).or_default().push(u.name.clone());
            }
            users.push(User {
                name: u.name.clone(),
                uid: u.uid,
                gid: u.uid,
                gecos: u.gecos.clone(),
                dir: home(&u.name),
                shell: a.shell.clone(),
                groups: gids,
            });
            taken_uid.insert(u.uid);
            taken_name.insert(u.name.clone());
        }
        let pinned = a.pinned_uids.keys().cloned();
        for name in roster.iter().cloned().chain(pinned) {
            if taken_name.contains(&name)
                || local.users.contains_key(&name)
                || crate::policy::check_login_name(&name).is_err()
            {
                continue;
            }
            if let Some(why) = local.name_clash(&name) {
                warnings.push(format!("pre-login name {name} not served: {why}"));
                continue;
            }
            let uid = match (a.pinned_uids.get(&name), key) {
                (Some(p), _) => *p,
                (None, Some(k)) => uid_for(a, k, &name),
                (None, None) => {
                    warnings.push(format!("pre-login name {name} not served: no id key"));
                    continue;
                }
            };
            if local.uids.contains(&uid) || local.gids.contains(&uid) || taken_uid.contains(&uid) {
                warnings.push(format!("pre-login name {name} not served: uid {uid} collides"));
                continue;
            }
            users.push(User {
                name: name.clone(),
                uid,
                gid: uid,
                gecos: String::new(),
                dir: home(&name),
                shell: a.shell.clone(),
                groups: vec![],
            });
            taken_uid.insert(uid);
            taken_name.insert(name);
        }
        let group_gids: HashSet<u32> = self.groups.iter().map(|g| g.gid).collect();
        for u in &users {
            // User private group, unless a local or OIDC group has the name or gid.
            if !local.groups.contains_key(&u.name)
                && !local.gids.contains(&u.gid)
                && !gid_of.contains_key(u.name.as_str())
                && !group_gids.contains(&u.gid)
            {
                groups.push(Group { name: u.name.clone(), gid: u.gid, members: vec![] });
            }
        }
        for g in &self.groups {
            if !g.local && (local.groups.contains_key(&g.name) || local.gids.contains(&g.gid)) {
                warnings.push(format!("group {} (gid {}) not served: now a local group or gid", g.name, g.gid));
                continue;
            }
            groups.push(Group {
                name: g.name.clone(),
                gid: g.gid,
                members: members.remove(g.name.as_str()).unwrap_or_default(),
            });
        }
        let prelogin = (!a.prelogin_patterns.is_empty()).then(|| Prelogin {
            key_file: a.id_key_file.to_string_lossy().into_owned(),
            uid_min: a.uid_min,
            uid_max: a.uid_max,
            home: a.home.clone(),
            shell: a.shell.clone(),
            patterns: a.prelogin_patterns.clone(),
        });
        (users, groups, prelogin, warnings)
    }
}

#[cfg(test)]
mod tests;

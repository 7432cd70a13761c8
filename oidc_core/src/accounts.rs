//! Accounts: verified identities → POSIX users and groups. Pure: the store,
//! the local account database and `now` are passed in; helperd does the I/O.
//!
//! Rules (DESIGN.md "Accounts"): an identity is (issuer, sub) and keeps the
//! first name it logged in with; the first identity to hold a name keeps it;
//! uids come from a pin, a claim or the fleet-wide hash and never equal a
//! local uid, 0, or another identity's uid — a collision refuses the later one.

use crate::config::{Accounts, Config, Groups};
use nss_oidc::format::{id_hash, Group, Prelogin, User};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

pub const STORE_VERSION: u32 = 1;
/// The store file in `helperd.state_dir` (0600 root; helperd writes it, the
/// module reads it only when helperd is unreachable).
pub const STORE_FILE: &str = "accounts.json";
/// `last_login` is recorded to this resolution: a returning user's login
/// changes nothing on disk unless the recorded time is older than this, so the
/// common login costs no fsync (helperd writes the store only on a change).
pub const LAST_LOGIN_RESOLUTION_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    pub issuer: String,
    pub sub: String,
    pub name: String,
    pub uid: u32,
    pub gecos: String,
    /// NSS group names (after mapping) from the latest login.
    pub groups: Vec<String>,
    pub first_login: i64,
    pub last_login: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub name: String,
    pub gid: u32,
    /// An existing local group that OIDC members are added to (merge).
    pub local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    pub v: u32,
    pub users: Vec<StoredUser>,
    pub groups: Vec<StoredGroup>,
}

impl Default for Store {
    fn default() -> Self {
        Store { v: STORE_VERSION, users: vec![], groups: vec![] }
    }
}

/// Local (files) accounts: never shadowed, their ids never reused.
#[derive(Debug, Clone, Default)]
pub struct LocalDb {
    pub users: HashMap<String, u32>,
    pub uids: HashSet<u32>,
    pub groups: HashMap<String, u32>,
    pub gids: HashSet<u32>,
}

impl LocalDb {
    /// Parse passwd(5) and group(5) text.
    pub fn parse(passwd: &str, group: &str) -> LocalDb {
        let mut db = LocalDb::default();
        let fields = |l: &str| -> Option<(String, u32)> {
            let mut it = l.split(':');
            let name = it.next()?.trim();
            let id = it.nth(1)?.trim().parse().ok()?;
            (!name.is_empty() && !name.starts_with('#') && !name.starts_with('+')).then(|| (name.to_string(), id))
        };
        for (n, id) in passwd.lines().filter_map(fields) {
            db.uids.insert(id);
            db.users.insert(n, id);
        }
        for (n, id) in group.lines().filter_map(fields) {
            db.gids.insert(id);
            db.groups.insert(n, id);
        }
        db
    }
}

/// What pam_oidc reports after a verified login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginEvent {
    pub issuer: String,
    pub sub: String,
    pub name: String,
    /// Raw IdP groups from the token.
    pub groups: Vec<String>,
    pub uid_claim: Option<u32>,
    pub gecos: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub uid: u32,
    pub gid: u32,
    /// (NSS name, gid) of the supplementary groups.
    pub groups: Vec<(String, u32)>,
    pub new: bool,
    /// Groups skipped and why (logged by helperd).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
}

fn refuse(code: &'static str, reason: String) -> Refusal {
    Refusal { code, reason }
}

/// Group names as NSS serves them: lower case, `[a-z0-9_.-]`, starting with a
/// letter or `_` (else prefixed `g-`), at most 32 bytes.
pub fn sanitize_group(raw: &str) -> Option<String> {
    if !raw.chars().any(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut s: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c) { c } else { '-' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
        s = format!("g-{s}");
    }
    s.truncate(32);
    let s = s.trim_end_matches('-').to_string();
    nss_oidc::format::portable_name(s.as_bytes()).then_some(s)
}

/// IdP groups → NSS group names per `[groups]`: prefix filter/strip, allow-list,
/// map, sanitise. The flag says the name came from an explicit `map` entry
/// (only those may extend a local group).
pub fn map_groups(raw: &[String], g: &Groups) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = vec![];
    for r in raw {
        let Some(stripped) = r.strip_prefix(g.prefix.as_str()) else { continue };
        if stripped.is_empty() || (!g.allow.is_empty() && !g.allow.iter().any(|a| a == stripped)) {
            continue;
        }
        let name = match g.map.get(stripped).or_else(|| g.map.get(r)) {
            Some(m) => Some((m.clone(), true)),
            None => sanitize_group(stripped).map(|n| (n, false)),
        };
        if let Some(n) = name.filter(|(n, _)| !out.iter().any(|(o, _)| o == n)) {
            out.push(n);
        }
    }
    out
}

/// The uid a name gets with no claim: pinned, else the fleet hash. The NSS
/// module computes the same for pre-login names.
pub fn uid_for(a: &Accounts, name: &str) -> u32 {
    match a.pinned_uids.get(name) {
        Some(uid) => *uid,
        None => id_hash(a.id_hash_key.as_bytes(), b"user", name.as_bytes(), a.uid_min, a.uid_max),
    }
}

pub fn gid_for(a: &Accounts, group: &str) -> u32 {
    id_hash(a.id_hash_key.as_bytes(), b"group", group.as_bytes(), a.gid_min, a.gid_max)
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

    pub fn find(&self, issuer: &str, sub: &str) -> Option<&StoredUser> {
        self.users.iter().find(|u| u.issuer == issuer && u.sub == sub)
    }

    /// Admit a verified login: allocate or confirm its uid and groups, or refuse.
    pub fn admit(&mut self, ev: &LoginEvent, cfg: &Config, local: &LocalDb, now: i64) -> Result<Admitted, Refusal> {
        let a = &cfg.accounts;
        if local.users.contains_key(&ev.name) {
            return Err(refuse("local-account", format!("{} is a local account; OIDC never shadows it", ev.name)));
        }
        let existing = self.users.iter().position(|u| u.issuer == ev.issuer && u.sub == ev.sub);
        if let Some(i) = existing {
            if self.users[i].name != ev.name {
                return Err(refuse(
                    "identity-renamed",
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
                "name-taken",
                format!(
                    "{} belongs to identity {} of {}; refused for sub {}",
                    ev.name, holder.sub, holder.issuer, ev.sub
                ),
            ));
        }
        let uid = match existing {
            Some(i) => self.users[i].uid,
            None => {
                let uid = match (a.pinned_uids.get(&ev.name), ev.uid_claim) {
                    (Some(p), _) => *p,
                    (None, Some(c)) if c < a.uid_min || c > a.uid_max => {
                        return Err(refuse(
                            "uid-out-of-range",
                            format!("uid claim {c} outside {}..={}", a.uid_min, a.uid_max),
                        ));
                    }
                    (None, Some(c)) => c,
                    (None, None) => uid_for(a, &ev.name),
                };
                if uid == 0 || local.uids.contains(&uid) || local.gids.contains(&uid) {
                    return Err(refuse("uid-collision", format!("uid {uid} for {} is a local uid or gid", ev.name)));
                }
                if let Some(h) = self.users.iter().find(|u| u.uid == uid) {
                    return Err(refuse(
                        "uid-collision",
                        format!("uid {uid} for {} is held by {}; pin another in accounts.pinned_uids", ev.name, h.name),
                    ));
                }
                if self.groups.iter().any(|g| g.gid == uid) {
                    return Err(refuse("uid-collision", format!("uid {uid} for {} is an OIDC group's gid", ev.name)));
                }
                uid
            }
        };
        let mut warnings = vec![];
        let mut groups = vec![];
        let user_uids: HashSet<u32> = self.users.iter().map(|u| u.uid).chain([uid]).collect();
        for (name, explicit) in map_groups(&ev.groups, &cfg.groups) {
            if let Some(&gid) = local.groups.get(&name) {
                if !explicit {
                    warnings.push(format!("group {name} skipped: a local group of that name exists (extend it only with an explicit groups.map entry)"));
                    continue;
                }
                if !self.groups.iter().any(|g| g.name == name) {
                    self.groups.push(StoredGroup { name: name.clone(), gid, local: true });
                }
                groups.push((name, gid));
                continue;
            }
            if local.users.contains_key(&name) || (self.users.iter().any(|u| u.name == name) || name == ev.name) {
                warnings.push(format!("group {name} skipped: the name is a user's (private group)"));
                continue;
            }
            if let Some(g) = self.groups.iter().find(|g| g.name == name) {
                groups.push((name, g.gid));
                continue;
            }
            let gid = gid_for(a, &name);
            if local.gids.contains(&gid) || self.groups.iter().any(|g| g.gid == gid) || user_uids.contains(&gid) {
                warnings.push(format!("group {name} skipped: gid {gid} collides with another group"));
                continue;
            }
            self.groups.push(StoredGroup { name: name.clone(), gid, local: false });
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

    /// Everything the host serves: store users (with private groups), the
    /// roster and pinned names (pre-login records), and OIDC groups with members.
    /// Returns users, groups, the pre-login rule and warnings for the log.
    pub fn snapshot_parts(
        &self,
        cfg: &Config,
        local: &LocalDb,
        roster: &[String],
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
            let uid = uid_for(a, &name);
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
            key: a.id_hash_key.clone(),
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

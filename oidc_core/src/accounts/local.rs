//! The host's own names and ids ([`LocalDb`]): what a token may never make.

use nss_snapshot::format::{is_reserved, skeleton};
use std::collections::{HashMap, HashSet};

/// Names and ids the host already has (files, plus what other NSS sources
/// answered for the names a login brings): never shadowed, never reused, and
/// no OIDC name may share a skeleton (case/punctuation-blind form) with them.
#[derive(Debug, Clone, Default)]
pub struct LocalDb {
    /// Local user names and their uids.
    pub users: HashMap<String, u32>,
    /// Every local uid.
    pub uids: HashSet<u32>,
    /// Local group names and their gids.
    pub groups: HashMap<String, u32>,
    /// Every local gid.
    pub gids: HashSet<u32>,
    /// Skeletons of every user and group name above.
    pub skeletons: HashSet<Vec<u8>>,
}

impl LocalDb {
    /// Parse passwd(5) and group(5) text.
    pub fn parse(passwd: &str, group: &str) -> LocalDb {
        // Sized once (this runs for every login, in the module and in helperd).
        let (nu, ng) = (passwd.lines().count(), group.lines().count());
        let mut db = LocalDb {
            users: HashMap::with_capacity(nu),
            uids: HashSet::with_capacity(nu),
            groups: HashMap::with_capacity(ng),
            gids: HashSet::with_capacity(ng),
            skeletons: HashSet::with_capacity(nu + ng),
        };
        let fields = |l: &str| -> Option<(String, u32)> {
            let mut it = l.split(':');
            let name = it.next()?.trim();
            let id = it.nth(1)?.trim().parse().ok()?;
            (!name.is_empty() && !name.starts_with('#') && !name.starts_with('+')).then(|| (name.to_string(), id))
        };
        for (n, id) in passwd.lines().filter_map(fields) {
            db.add_user(&n, id);
        }
        for (n, id) in group.lines().filter_map(fields) {
            db.add_group(&n, id);
        }
        db
    }

    /// Record a local user: its name, uid and skeleton.
    pub fn add_user(&mut self, name: &str, uid: u32) {
        self.uids.insert(uid);
        self.skeletons.insert(skeleton(name.as_bytes()));
        self.users.insert(name.to_string(), uid);
    }

    /// Record a local group: its name, gid and skeleton.
    pub fn add_group(&mut self, name: &str, gid: u32) {
        self.gids.insert(gid);
        self.skeletons.insert(skeleton(name.as_bytes()));
        self.groups.insert(name.to_string(), gid);
    }

    /// Why `name` may not be made from a token here, if it may not: reserved,
    /// or the same name as a host user or group in any case or punctuation.
    pub fn name_clash(&self, name: &str) -> Option<String> {
        if is_reserved(name.as_bytes()) {
            return Some(format!("{name} is reserved on Linux hosts (any case or punctuation)"));
        }
        if self.users.contains_key(name) {
            return Some(format!("{name} is a local user"));
        }
        if self.groups.contains_key(name) {
            return Some(format!("{name} is a local group"));
        }
        if self.skeletons.contains(&skeleton(name.as_bytes())) {
            return Some(format!("{name} differs from a local user or group only in case or punctuation"));
        }
        None
    }
}

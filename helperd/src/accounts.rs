//! The account service: the only writer of the account store and the NSS
//! snapshot. A login is admitted on a copy of the store; the copy is written
//! (atomic rename, 0600) and the snapshot rebuilt before it becomes current,
//! so a crash at any point leaves the previous, consistent state.

use crate::atomic;
use crate::clock::unix_now;
use crate::log::{error, info, warning};
use nss_snapshot::format::IdKey;
use oidc_core::Config;
use oidc_core::Response;
use oidc_core::{LocalDb, LoginEvent, Store, StoredGroup, StoredUser, STORE_FILE};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

pub struct AccountService {
    cfg: Config,
    store: Mutex<Store>,
    store_path: PathBuf,
    /// mtimes of passwd, group and roster at the last snapshot.
    inputs: Mutex<Vec<Option<SystemTime>>>,
    /// passwd and group as last parsed, and what identified the files then.
    local: Mutex<Option<(LocalKey, LocalDb)>>,
}

/// What identifies a file's content without reading it: device, inode, size,
/// and modification and change times to the nanosecond (an editor's rename
/// makes a new inode; an in-place write moves the times).
type LocalKey = [Option<FileKey>; 2];
/// (device, inode, size, mtime s, mtime ns, ctime s, ctime ns)
type FileKey = (u64, u64, u64, i64, i64, i64, i64);

fn file_key(p: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl AccountService {
    pub fn open(cfg: Config) -> Result<AccountService, String> {
        let dir = &cfg.helperd.state_dir;
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let store_path = dir.join(STORE_FILE);
        let store = Store::load(&store_path)?;
        Ok(AccountService {
            cfg,
            store: Mutex::new(store),
            store_path,
            inputs: Mutex::new(vec![]),
            local: Mutex::new(None),
        })
    }

    fn input_times(&self) -> Vec<Option<SystemTime>> {
        let a = &self.cfg.accounts;
        let mut v = vec![mtime(&a.passwd_file), mtime(&a.group_file)];
        if let Some(r) = &a.roster_file {
            v.push(mtime(r));
        }
        v
    }

    /// The host's passwd and group, parsed again only when either file changed
    /// (a login otherwise re-read and re-parsed both).
    fn local(&self) -> LocalDb {
        let a = &self.cfg.accounts;
        let key = [file_key(&a.passwd_file), file_key(&a.group_file)];
        let mut cached = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, db)) = cached.as_ref() {
            if *k == key && key.iter().all(Option::is_some) {
                return db.clone();
            }
        }
        let mut all_read = true;
        let mut read = |p: &Path| {
            std::fs::read_to_string(p).unwrap_or_else(|e| {
                warning!("reading {}: {e}", p.display());
                all_read = false;
                String::new()
            })
        };
        let (passwd, group) = (read(&a.passwd_file), read(&a.group_file));
        let db = LocalDb::parse(&passwd, &group);
        // Keyed by what was seen before reading: a change during the read
        // makes the next call parse again. Not kept while a file changed in
        // the last 2 s: file times are coarse (a kernel tick), so a second
        // same-size write within one tick could otherwise look unchanged.
        let settled = |k: &Option<FileKey>| k.is_some_and(|k| unix_now().saturating_sub(k.3.max(k.5)) >= 2);
        // A file that could not be read is never kept as empty: the next
        // login reads it again.
        *cached = (all_read && key.iter().all(settled)).then(|| (key, db.clone()));
        db
    }

    fn roster(&self) -> Vec<String> {
        let Some(p) = &self.cfg.accounts.roster_file else { return vec![] };
        match std::fs::read_to_string(p) {
            Ok(t) => {
                t.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
            }
            Err(e) => {
                warning!("reading roster {}: {e}", p.display());
                vec![]
            }
        }
    }

    /// The fleet id key (root-only file). Read per use: installing or
    /// replacing it needs no restart.
    fn id_key(&self) -> Result<IdKey, String> {
        IdKey::read(&self.cfg.accounts.id_key_file)
            .map_err(|e| format!("no usable id key ({e}): run `helperd id-key generate` or install the fleet's key"))
    }

    /// Names a login brings that another NSS source (sss, ldap, systemd,
    /// files via NSS ...) already answers for: they count as local. Our own
    /// names (the store's, roster, pinned and pre-login names) are not foreign.
    fn add_foreign_names(
        &self,
        store: &Store,
        local: &mut LocalDb,
        key: Option<&IdKey>,
        ev: &LoginEvent,
        groups: &[String],
    ) {
        let names: &[&str] = if ev.name.is_empty() { &[] } else { &[ev.name.as_str()] };
        let roster = self.roster();
        let ours_user = |n: &str| {
            store.users.iter().any(|u| u.name == n)
                || roster.iter().any(|r| r == n)
                || self.cfg.accounts.pinned_uids.contains_key(n)
                || self
                    .cfg
                    .accounts
                    .prelogin_patterns
                    .iter()
                    .any(|p| nss_snapshot::format::glob(p.as_bytes(), n.as_bytes()))
        };
        for &n in names {
            if local.users.contains_key(n) || ours_user(n) {
                continue;
            }
            if let Ok(Some(u)) = nix::unistd::User::from_name(n) {
                local.add_user(n, u.uid.as_raw());
            }
        }
        // The ids a new account and its new groups would get: taken by another source?
        let a = &self.cfg.accounts;
        if !ev.name.is_empty() && store.find(&ev.issuer, &ev.sub).is_none() {
            if let Ok(uid) = oidc_core::new_uid(a, key, ev) {
                let taken = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .is_some_and(|u| !ours_user(&u.name));
                if taken && !store.users.iter().any(|u| u.uid == uid) {
                    local.uids.insert(uid);
                }
            }
        }
        for g in groups.iter().filter(|g| key.is_some() && !store.groups.iter().any(|sg| sg.name == **g)) {
            let Some(key) = key else { continue };
            let gid = oidc_core::gid_for(a, key, g);
            let taken = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten();
            if taken.is_some_and(|t| !store.groups.iter().any(|sg| sg.name == t.name) && !ours_user(&t.name)) {
                local.gids.insert(gid);
            }
        }
        for g in groups {
            let ours = store.groups.iter().any(|sg| sg.name == *g && !sg.local) || ours_user(g);
            if local.groups.contains_key(g) || ours {
                continue;
            }
            if let Ok(Some(gr)) = nix::unistd::Group::from_name(g) {
                local.add_group(g, gr.gid.as_raw());
            }
        }
    }

    fn write_snapshot(&self, store: &Store, local: &LocalDb) -> Result<(), String> {
        let key = if self.cfg.accounts.prelogin_patterns.is_empty() && self.cfg.accounts.roster_file.is_none() {
            None
        } else {
            self.id_key().map_err(|e| warning!("pre-login names not served: {e}")).ok()
        };
        let (users, groups, rule, warnings) = store.snapshot_parts(&self.cfg, local, &self.roster(), key.as_ref());
        for w in warnings {
            warning!("nss snapshot: {w}");
        }
        let generation = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let bytes = nss_snapshot::format::build_with(&users, &groups, rule.as_ref(), generation)?;
        crate::snapshot::replace(&self.cfg.helperd.nss_snapshot, &bytes)
            .map_err(|e| format!("writing {}: {e}", self.cfg.helperd.nss_snapshot.display()))?;
        info!("nss snapshot written: {} users, {} groups", users.len(), groups.len());
        Ok(())
    }

    /// Write the snapshot now (at start), and remember the inputs it reflects.
    pub fn rebuild(&self) -> Result<(), String> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let times = self.input_times();
        self.write_snapshot(&store, &self.local())?;
        *self.inputs.lock().unwrap_or_else(|p| p.into_inner()) = times;
        Ok(())
    }

    /// Rebuild when /etc/passwd, /etc/group or the roster changed.
    pub fn rebuild_if_inputs_changed(&self) {
        let changed = *self.inputs.lock().unwrap_or_else(|p| p.into_inner()) != self.input_times();
        if changed {
            if let Err(e) = self.rebuild() {
                error!("nss snapshot rebuild failed: {e}");
            }
        }
    }

    /// A verified login reported by pam_oidc (the server lets only root peers
    /// here): admit the identity, or say why not.
    ///
    /// Admission runs in place on the store (no copy of every account per
    /// login): it only appends accounts and groups and rewrites the identity's
    /// own record, so an [`Undo`] restores the store if a write fails. A
    /// returning user whose record did not change costs no disk write; one
    /// whose login time alone moved rewrites the store but not the snapshot.
    pub fn admit(&self, ev: &LoginEvent) -> Result<(String, Vec<String>), Response> {
        let mut current = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let mut local = self.local();
        let who = format!(
            "issuer={} sub={} name={}",
            oidc_core::clean(&ev.issuer),
            oidc_core::clean(&ev.sub),
            oidc_core::clean(&ev.name)
        );
        // Without a usable key, accounts already here keep working; new ones wait.
        let (key, key_error) = match self.id_key() {
            Ok(k) => (Some(k), None),
            Err(e) => {
                error!("{e}");
                (None, Some(e))
            }
        };
        let candidates: Vec<String> = match self.cfg.issuer(&ev.issuer) {
            Some(i) => oidc_core::map_groups(&ev.groups, i, &self.cfg).0.into_iter().map(|h| h.name).collect(),
            None => vec![],
        };
        self.add_foreign_names(&current, &mut local, key.as_ref(), ev, &candidates);
        let undo = Undo::take(&current, ev);
        let admitted = match current.admit(ev, &self.cfg, &local, key.as_ref(), unix_now()) {
            Ok(a) => a,
            Err(mut r) => {
                undo.restore(&mut current);
                if let (Some(e), "accounts-unavailable") = (&key_error, r.code.as_str()) {
                    r.reason = e.clone();
                }
                warning!("account refused code={} {who}: {}", r.code, r.reason);
                return Err(Response::Refused { code: r.code, reason: r.reason });
            }
        };
        for w in &admitted.warnings {
            warning!("account {who}: {w}");
        }
        let (changed, nss_changed) = undo.changes(&current);
        if changed {
            let written = serde_json::to_vec_pretty(&*current)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    atomic::write(&self.store_path, &bytes, 0o600).map_err(|e| {
                        error!("writing {}: {e}", self.store_path.display());
                        format!("cannot write the account store: {e}")
                    })
                })
                .and_then(|()| {
                    if !nss_changed {
                        return Ok(()); // only a login time moved: the snapshot stays as it is
                    }
                    self.write_snapshot(&current, &local).map_err(|e| {
                        error!("{e}");
                        format!("cannot write the NSS snapshot: {e}")
                    })
                });
            if let Err(reason) = written {
                undo.restore(&mut current);
                return Err(Response::Refused { code: oidc_core::RefusalCode::AccountsUnavailable, reason });
            }
        }
        let groups = admitted.groups.iter().map(|(n, _)| n.clone()).collect();
        Ok((self.admitted_line(&admitted, &who), groups))
    }

    /// `helperd rebind`: move a name to another identity of its issuer.
    pub fn rebind(&self, name: &str, issuer: &str, sub: &str, by_uid: u32) -> Result<String, Response> {
        let mut current = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let before = current.clone();
        let refused = |code: oidc_core::RefusalCode, reason: String| Response::Refused { code, reason };
        let Some(iss) = self.cfg.issuer(issuer) else {
            return Err(refused(
                oidc_core::RefusalCode::UntrustedIssuer,
                format!("{issuer} is not a configured issuer"),
            ));
        };
        if self.cfg.name_owner(name).map(|o| o.url.as_str()) != Some(iss.url.as_str()) {
            return Err(refused(
                oidc_core::RefusalCode::NameOfAnotherIssuer,
                format!("{name} is not in the name space of {issuer}"),
            ));
        }
        let detail = current.rebind(name, &iss.url, sub).map_err(|r| refused(r.code, r.reason))?;
        let bytes = serde_json::to_vec_pretty(&*current)
            .map_err(|e| refused(oidc_core::RefusalCode::AccountsUnavailable, e.to_string()))?;
        if let Err(e) = atomic::write(&self.store_path, &bytes, 0o600) {
            *current = before;
            return Err(refused(
                oidc_core::RefusalCode::AccountsUnavailable,
                format!("cannot write the account store: {e}"),
            ));
        }
        info!("account rebound by uid={by_uid}: {}", oidc_core::clean(&detail));
        Ok(detail)
    }

    /// Log the admission; the detail for the reply.
    fn admitted_line(&self, admitted: &oidc_core::Admitted, who: &str) -> String {
        let groups: Vec<String> = admitted.groups.iter().map(|(n, g)| format!("{n}({g})")).collect();
        info!(
            "account {} {who} uid={} groups={}",
            if admitted.new { "created" } else { "confirmed" },
            admitted.uid,
            groups.join(",")
        );
        format!("uid {} groups {}", admitted.uid, groups.join(","))
    }

    /// The uid of an account name: an OIDC account, else a local one.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.users.iter().find(|u| u.name == name).map(|u| u.uid).or_else(|| self.local().users.get(name).copied())
    }

    /// The host groups of a role-account login (nobody is added to NSS
    /// groups): what the token's groups are on this host, with the same
    /// local, other-source and issuer checks as an admission.
    pub fn role_groups(&self, issuer: &str, raw: &[String]) -> Vec<String> {
        let Some(iss) = self.cfg.issuer(issuer) else { return vec![] };
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let mut local = self.local();
        let candidates: Vec<String> =
            oidc_core::map_groups(raw, iss, &self.cfg).0.into_iter().map(|h| h.name).collect();
        let ev = LoginEvent {
            issuer: iss.url.clone(),
            sub: String::new(),
            name: String::new(),
            groups: vec![],
            uid_claim: None,
            gecos: String::new(),
        };
        self.add_foreign_names(&store, &mut local, None, &ev, &candidates);
        let (groups, warnings) = store.servable_groups(iss, raw, &self.cfg, &local);
        for w in warnings {
            warning!("role account login issuer={}: {w}", oidc_core::clean(issuer));
        }
        groups
    }

    /// The identity holding an OIDC account name, if any ("issuer sub").
    pub fn holder_of(&self, name: &str) -> Option<String> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.users.iter().find(|u| u.name == name).map(|u| format!("{} {}", u.issuer, oidc_core::clean(&u.sub)))
    }

    pub fn users(&self) -> Vec<StoredUser> {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).users.clone()
    }
}

/// What an admission may change in the store, taken before it runs: the
/// identity's own record and how many accounts and groups there were.
struct Undo {
    users: usize,
    /// Groups as they were (admission may bind an old group to its issuer).
    groups: Vec<StoredGroup>,
    record: Option<(usize, StoredUser)>,
}

impl Undo {
    fn take(store: &Store, ev: &LoginEvent) -> Undo {
        let record = store
            .users
            .iter()
            .position(|u| u.issuer == ev.issuer && u.sub == ev.sub)
            .map(|i| (i, store.users[i].clone()));
        Undo { users: store.users.len(), groups: store.groups.clone(), record }
    }

    /// (anything changed, anything NSS serves changed).
    fn changes(&self, store: &Store) -> (bool, bool) {
        if store.users.len() != self.users || store.groups != self.groups {
            return (true, true);
        }
        match &self.record {
            Some((i, before)) => match store.users.get(*i) {
                Some(now) if now == before => (false, false),
                Some(now) => {
                    let mut a = now.clone();
                    (a.first_login, a.last_login) = (before.first_login, before.last_login);
                    (true, a != *before)
                }
                None => (true, true),
            },
            None => (false, false),
        }
    }

    fn restore(&self, store: &mut Store) {
        store.users.truncate(self.users);
        store.groups.clone_from(&self.groups);
        if let Some((i, u)) = &self.record {
            if let Some(slot) = store.users.get_mut(*i) {
                *slot = u.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parsed passwd/group are reused only while both files are unchanged
    /// and settled: a group added, renamed in place (same size) or written
    /// by rename is seen by the next login.
    #[test]
    fn local_names_are_cached_only_while_the_files_are_unchanged() {
        let dir = crate::testing::temp_dir("local");
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let (passwd, group) = (dir.join("passwd"), dir.join("group"));
        std::fs::create_dir(dir.join("group.d")).unwrap(); // reading it fails
        std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(&group, "root:x:0:\ndevs:x:500:\n").unwrap();
        let text = format!(
            "version = 1\n[helperd]\ncache_dir = \"{d}/cache\"\nstate_dir = \"{d}/state\"\nnss_snapshot = \"{d}/snapshot\"\n\
             [accounts]\nid_key_file = \"{d}/no-id-key\"\npasswd_file = \"{d}/passwd\"\ngroup_file = \"{d}/group\"\n\
             [[issuer]]\nurl = \"https://idp.example\"\naudiences = [\"a\"]\n",
            d = dir.display()
        );
        let svc = AccountService::open(Config::parse(&text, Path::new("t.toml")).unwrap()).unwrap();
        assert!(svc.local().groups.contains_key("devs"));
        assert!(svc.local.lock().unwrap().is_none(), "files changed within 2 s are not kept");
        let unreadable = AccountService::open(
            Config::parse(
                &text.replace(&format!("{}/group\"", dir.display()), &format!("{}/group.d\"", dir.display())),
                Path::new("t.toml"),
            )
            .unwrap(),
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(svc.local().groups.contains_key("devs"));
        assert!(svc.local.lock().unwrap().is_some(), "settled files are kept");
        assert!(unreadable.local().groups.is_empty());
        assert!(unreadable.local.lock().unwrap().is_none(), "a file that could not be read is not kept as empty");
        // Same size, in place: the name must change.
        std::fs::write(&group, "root:x:0:\nops_:x:500:\n").unwrap();
        let l = svc.local();
        assert!(l.groups.contains_key("ops_") && !l.groups.contains_key("devs"));
        // By rename (a new inode), as groupadd and vipw write it.
        std::fs::write(dir.join("group.new"), "root:x:0:\nops_:x:500:\nwheel2:x:501:\n").unwrap();
        std::fs::rename(dir.join("group.new"), &group).unwrap();
        assert!(svc.local().groups.contains_key("wheel2"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

use super::*;
use crate::config::Accounts;
use std::path::Path;

/// `extra` goes before the issuer; `groups` into `[issuer.groups]`.
fn cfg_g(extra: &str, groups: &str) -> Config {
    let text = format!(
        "version = 1\n{extra}\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n\
         [issuer.groups]\n{groups}\n[[issuer]]\nurl = \"https://second.test\"\naudiences = [\"a\"]\n\
         name_prefix = \"ext-\"\n"
    );
    Config::parse(&text, Path::new("t.toml")).unwrap()
}

fn cfg(extra: &str) -> Config {
    cfg_g(extra, "")
}

const KEY: IdKey = IdKey::from_bytes(*b"0123456789abcdef");

fn local() -> LocalDb {
    LocalDb::parse(
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/bin/false\nbob:x:1000:1000::/home/bob:/bin/bash\n",
        "root:x:0:\nsudo:x:27:bob\nbob:x:1000:\ndocker:x:999:\n",
    )
}

fn ev(sub: &str, name: &str, groups: &[&str]) -> LoginEvent {
    LoginEvent {
        issuer: "https://idp.test".into(),
        sub: sub.into(),
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        uid_claim: None,
        gecos: format!("{name} N."),
    }
}

#[test]
fn first_login_allocates_deterministic_ids() {
    let c = cfg("");
    let mut s1 = Store::default();
    let mut s2 = Store::default();
    let a = s1.admit(&ev("s-a", "alice", &["devs", "ops-admins"]), &c, &local(), Some(&KEY), 10).unwrap();
    let b = s2.admit(&ev("s-a", "alice", &["ops-admins", "devs"]), &c, &local(), Some(&KEY), 99).unwrap();
    assert_eq!(a.uid, b.uid, "two independent stores agree");
    assert_eq!(a.uid, uid_for(&c.accounts, &KEY, "alice"));
    assert!(a.uid >= c.accounts.uid_min && a.uid <= c.accounts.uid_max);
    assert_eq!(a.groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["devs", "ops-admins"]);
    let g1: Vec<_> = s1.groups.iter().map(|g| (g.name.clone(), g.gid)).collect();
    let mut g2: Vec<_> = s2.groups.iter().map(|g| (g.name.clone(), g.gid)).collect();
    g2.sort();
    let mut g1s = g1.clone();
    g1s.sort();
    assert_eq!(g1s, g2, "group gids agree too");
    assert!(a.new);
    // Second login: same uid, groups refreshed.
    let again = s1.admit(&ev("s-a", "alice", &["devs"]), &c, &local(), Some(&KEY), 20).unwrap();
    assert_eq!((again.uid, again.new), (a.uid, false));
    assert_eq!(s1.users[0].groups, ["devs"]);
    assert_eq!(s1.users[0].last_login, 10, "last_login is kept to LAST_LOGIN_RESOLUTION_SECS");
    let later = 10 + super::LAST_LOGIN_RESOLUTION_SECS;
    s1.admit(&ev("s-a", "alice", &["devs"]), &c, &local(), Some(&KEY), later).unwrap();
    assert_eq!(s1.users[0].last_login, later);
}

#[test]
fn collisions_and_ownership_are_refused() {
    let c = cfg("");
    let mut s = Store::default();
    assert_eq!(
        s.admit(&ev("s-b", "bob", &[]), &c, &local(), Some(&KEY), 1).unwrap_err().code.as_str(),
        "local-account"
    );
    assert_eq!(
        s.admit(&ev("s-d", "daemon", &[]), &c, &local(), Some(&KEY), 1).unwrap_err().code.as_str(),
        "local-account"
    );
    s.admit(&ev("s-a", "alice", &[]), &c, &local(), Some(&KEY), 1).unwrap();
    assert_eq!(
        s.admit(&ev("s-other", "alice", &[]), &c, &local(), Some(&KEY), 2).unwrap_err().code.as_str(),
        "name-taken"
    );
    assert_eq!(
        s.admit(&ev("s-a", "alice2", &[]), &c, &local(), Some(&KEY), 2).unwrap_err().code.as_str(),
        "identity-renamed"
    );
    // A pinned uid equal to a local uid, or to another identity's uid.
    let c = cfg("[accounts]\npinned_uids = { carol = 1000, dave = 5000, erin = 5000 }");
    assert_eq!(
        s.admit(&ev("s-c", "carol", &[]), &c, &local(), Some(&KEY), 3).unwrap_err().code.as_str(),
        "uid-collision"
    );
    assert_eq!(s.admit(&ev("s-d", "dave", &[]), &c, &local(), Some(&KEY), 3).unwrap().uid, 5000);
    let e = s.admit(&ev("s-e", "erin", &[]), &c, &local(), Some(&KEY), 3).unwrap_err();
    assert_eq!(e.code.as_str(), "uid-collision");
    assert!(e.reason.contains("held by dave"), "{}", e.reason);
    // A hash collision (tiny range): the later identity is refused.
    let c = cfg("[accounts]\nuid_min = 70000\nuid_max = 70000\ngid_min = 80000\ngid_max = 80100");
    let mut s = Store::default();
    assert_eq!(s.admit(&ev("s-1", "u1", &[]), &c, &local(), Some(&KEY), 1).unwrap().uid, 70000);
    assert_eq!(s.admit(&ev("s-2", "u2", &[]), &c, &local(), Some(&KEY), 1).unwrap_err().code.as_str(), "uid-collision");
}

#[test]
fn uid_claim_must_be_in_range() {
    let c = cfg_g("", "").clone();
    let mut c = c;
    c.issuers[0].uid_claim = Some("uidNumber".into());
    let mut s = Store::default();
    let mut e = ev("s-a", "alice", &[]);
    e.uid_claim = Some(42);
    assert_eq!(s.admit(&e, &c, &local(), Some(&KEY), 1).unwrap_err().code.as_str(), "uid-out-of-range");
    e.uid_claim = Some(c.accounts.uid_min + 7);
    assert_eq!(s.admit(&e, &c, &local(), Some(&KEY), 1).unwrap().uid, c.accounts.uid_min + 7);
}

#[test]
fn groups_mapping_and_local_extension() {
    let c = cfg_g("", "prefix = \"unix-\"\nmap = { ops-admins = \"sudo\" }");
    let mut s = Store::default();
    let a = s
        .admit(
            &ev("s-a", "alice", &["unix-devs", "unix-ops-admins", "unix-docker", "sales", "unix-9lives"]),
            &c,
            &local(),
            Some(&KEY),
            1,
        )
        .unwrap();
    let names: Vec<_> = a.groups.iter().map(|(n, g)| (n.as_str(), *g)).collect();
    assert!(names.contains(&("sudo", 27)), "explicit map extends the local group: {names:?}");
    assert!(names.iter().any(|(n, _)| *n == "devs"));
    assert!(!names.iter().any(|(n, _)| n.contains("9lives")), "not a host name: dropped, not rewritten");
    assert!(!names.iter().any(|(n, _)| *n == "docker"), "never joins a local group by name alone");
    assert!(!names.iter().any(|(n, _)| *n == "sales"), "prefix filter");
    assert!(a.warnings.iter().any(|w| w.contains("docker")), "{:?}", a.warnings);
    assert!(a.warnings.iter().any(|w| w.contains("9lives")), "{:?}", a.warnings);
}

/// Issue 11: what a token's names may become on the host.
#[test]
fn names_a_token_can_never_take() {
    let c = cfg("");
    let mut s = Store::default();
    // Reserved names, in any case or punctuation, as users.
    for name in ["admin", "wheel", "docker", "sudo", "systemd-x", "uuidd", "ec2-user", "ad-min", "_apt"] {
        let e = s.admit(&ev(&format!("s-{name}"), name, &[]), &c, &local(), Some(&KEY), 1).unwrap_err();
        assert_eq!(e.code.as_str(), "reserved-name", "{name}: {e:?}");
    }
    // A local name with other punctuation (local `docker` group, local `bob`).
    let e = s.admit(&ev("s-b", "b-o-b", &[]), &c, &local(), Some(&KEY), 1).unwrap_err();
    assert_eq!(e.code.as_str(), "reserved-name", "{e:?}");
    // As groups: dropped with a warning, the login goes on, no host group is made.
    let a = s
        .admit(
            &ev("s-a", "alice", &["Admin", "ADMIN", "admin", "wheel", "Docker", "d.o.c.k.e.r", "Sales, EMEA", "devs"]),
            &c,
            &local(),
            Some(&KEY),
            1,
        )
        .unwrap();
    assert_eq!(a.groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["devs"], "{:?}", a.warnings);
    assert!(a.warnings.len() >= 6, "{:?}", a.warnings);
    assert!(!s.groups.iter().any(|g| ["admin", "wheel", "docker"].contains(&g.name.as_str())));
    // Two IdP groups never become one host group.
    let a = s.admit(&ev("s-a", "alice", &["OPS Admins", "ops-admins"]), &c, &local(), Some(&KEY), 2).unwrap();
    assert_eq!(a.groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["ops-admins"]);
    assert!(a.warnings.iter().any(|w| w.contains("OPS Admins")), "{:?}", a.warnings);
    let (m, _) = map_groups(&["Contractors".into(), "contractors".into()], &c.issuers[0], &c);
    assert_eq!(m.iter().map(|h| h.raw.as_str()).collect::<Vec<_>>(), ["contractors"], "no folding");
}

#[test]
fn names_and_groups_are_scoped_to_their_issuer() {
    let c = cfg("");
    let mut s = Store::default();
    s.admit(&ev("s-a", "alice", &["devs"]), &c, &local(), Some(&KEY), 1).unwrap();
    // The second issuer's name space is ext-*: it can never produce alice ...
    let mut e2 = ev("s-a", "alice", &["devs"]);
    e2.issuer = "https://second.test".into();
    assert_eq!(s.admit(&e2, &c, &local(), Some(&KEY), 2).unwrap_err().code.as_str(), "name-of-another-issuer");
    // ... nor can the first issuer produce ext-* names.
    assert_eq!(
        s.admit(&ev("s-z", "ext-zed", &[]), &c, &local(), Some(&KEY), 2).unwrap_err().code.as_str(),
        "name-of-another-issuer"
    );
    // Its group `devs` is its own `ext-devs`, never the first issuer's `devs`;
    // the first issuer's `ext-*` groups are dropped (another's name space).
    let mut e3 = ev("s-m", "ext-mallory", &["devs"]);
    e3.issuer = "https://second.test".into();
    let a = s.admit(&e3, &c, &local(), Some(&KEY), 3).unwrap();
    assert_eq!(a.groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["ext-devs"]);
    let a = s.admit(&ev("s-a", "alice", &["devs", "ext-devs"]), &c, &local(), Some(&KEY), 4).unwrap();
    assert_eq!(a.groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["devs"]);
    assert!(a.warnings.iter().any(|w| w.contains("another issuer's name space")), "{:?}", a.warnings);
    // rebind: the name moves to a new identity, keeping its uid.
    let uid = s.find("https://idp.test", "s-a").unwrap().uid;
    assert!(s.rebind("alice", "https://idp.test", "s-new").is_ok());
    assert_eq!(s.find("https://idp.test", "s-new").unwrap().uid, uid);
    assert_eq!(
        s.rebind("ext-mallory", "https://idp.test", "s-new").unwrap_err().code.as_str(),
        "identity-holds-another-name"
    );
    assert_eq!(s.rebind("nobody-here", "https://idp.test", "s-q").unwrap_err().code.as_str(), "no-such-account");
}

/// A name ground to land on a victim's uid needs the key: with another key
/// (the attacker's guess) the uids differ.
#[test]
fn uids_need_the_key() {
    let a = Accounts::default();
    let other = IdKey::from_bytes(*b"attacker-guessed");
    let victim = uid_for(&a, &KEY, "victim");
    let twin = (0..200_000).map(|i| format!("m{i}")).find(|n| uid_for(&a, &other, n) == uid_for(&a, &other, "victim"));
    // Even if a twin under the wrong key were found, it misses under the real key.
    if let Some(t) = twin {
        assert_ne!(uid_for(&a, &KEY, &t), victim);
    }
    assert!((a.uid_min..=a.uid_max).contains(&victim));
    assert!(a.uid_max < 0x7000_0000, "below kanidm's range");
}

#[test]
fn snapshot_parts_serve_users_groups_roster_and_rule() {
    let c = cfg("[accounts]\nprelogin_patterns = [\"dev-*\"]\npinned_uids = { zed = 1500000100 }");
    let mut s = Store::default();
    s.admit(&ev("s-a", "alice", &["devs"]), &c, &local(), Some(&KEY), 1).unwrap();
    s.admit(&ev("s-x", "xavier", &["devs"]), &c, &local(), Some(&KEY), 1).unwrap();
    let roster = ["roster1".into(), "bob".into(), "Bad Name".into(), "wheel".into()];
    let (users, groups, rule, _) = s.snapshot_parts(&c, &local(), &roster, Some(&KEY));
    let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "xavier", "roster1", "zed"], "local bob, reserved and invalid names skipped");
    assert_eq!(users[3].uid, 1_500_000_100);
    assert_eq!(users[2].uid, uid_for(&c.accounts, &KEY, "roster1"));
    let devs = groups.iter().find(|g| g.name == "devs").unwrap();
    assert_eq!(devs.members, ["alice", "xavier"]);
    assert!(groups.iter().any(|g| g.name == "alice" && g.gid == users[0].uid), "user private group");
    assert_eq!(users[0].groups, [devs.gid]);
    assert_eq!(rule.unwrap().patterns, ["dev-*"]);
    nss_snapshot::format::build_with(&users, &groups, None, 1).unwrap();
}

#[test]
fn local_db_parsing_ignores_junk() {
    let db = LocalDb::parse("# c\n+nis\nbad\nok:x:5:5::/:/bin/sh\n:x:1:1\n", "g:x:7:\n");
    assert_eq!(db.users.len(), 1);
    assert!(db.uids.contains(&5) && db.gids.contains(&7));
}

/// Review findings (issue 11): role names, look-alike OIDC names, no key,
/// role-only issuers' groups, deny probes with prefixes, local group names.
#[test]
fn review_findings_are_closed() {
    let text = "version = 1\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n\
        [[issuer]]\nurl = \"https://ci.test\"\naudiences = [\"a\"]\nuser_accounts = false\n\
        [[role_account]]\nname = \"dbadmin\"\nissuer = \"https://ci.test\"\ngroup = \"dba\"\n";
    let c = Config::parse(text, Path::new("t.toml")).unwrap();
    let mut s = Store::default();
    // A user can never take a role account's name.
    assert_eq!(
        s.admit(&ev("s-x", "dbadmin", &[]), &c, &local(), Some(&KEY), 1).unwrap_err().code.as_str(),
        "reserved-name"
    );
    // Nor an OIDC name that differs from another only in punctuation.
    s.admit(&ev("s-a", "alice", &[]), &c, &local(), Some(&KEY), 1).unwrap();
    assert_eq!(
        s.admit(&ev("s-m", "a-lice", &[]), &c, &local(), Some(&KEY), 1).unwrap_err().code.as_str(),
        "reserved-name"
    );
    // Without the key: returning users log in, new ones wait.
    assert!(s.admit(&ev("s-a", "alice", &["devs"]), &c, &local(), None, 2).is_ok());
    assert_eq!(
        s.admit(&ev("s-b", "bobby", &[]), &c, &local(), None, 2).unwrap_err().code.as_str(),
        "accounts-unavailable"
    );
    // A role-only issuer without a prefix makes no automatic host groups: its
    // `dba` or `ops` never equals the host's or the person issuer's.
    let (m, _) = map_groups(&["dba".into(), "ops".into()], &c.issuers[1], &c);
    assert!(m.is_empty(), "{m:?}");
    let (m, _) = map_groups(&["ops".into()], &c.issuers[0], &c);
    assert_eq!(m.len(), 1);
    // An automatic group that is a local group's name is not a host group for policy.
    let local = LocalDb::parse("", "dba:x:1500:\n");
    let (h, w) = host_groups(&["dba".into(), "devs".into()], &c.issuers[0], &c, &local);
    assert_eq!(h, ["devs"], "{w:?}");
    // Deny probes carry the issuer's prefix and the incomplete mark.
    let mut iss = c.issuers[0].clone();
    iss.name_prefix = "b-".into();
    let p = deny_probes(&iss, &["Contractors".into()], true);
    let policy = crate::config::Policy { allowed_groups: vec![], denied_groups: vec!["b-contractors".into()] };
    assert!(p.contains(&INCOMPLETE.to_string()));
    let e = crate::policy::check_groups(&[], &p[..p.len() - 1], &policy, &[]).unwrap_err();
    assert_eq!(e.code(), "in-denied-group", "the prefixed name is caught");
}

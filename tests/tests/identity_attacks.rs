//! Issue 11: what a verified token becomes on the host — through the real
//! pam_oidc.so (pamtester under pam_wrapper), a real helperd, a real OpenID
//! Provider and real glibc (libnss_oidc.so.2 in a private mount namespace).
//! Each attack from the review, tried as an attacker would, refused or
//! neutralised with its logged reason.

use integration::nss::NssNs;
use integration::*;
use oidc_core::{ipc_call, Request, Response};
use serde_json::{json, Value};
use std::time::Duration;

const ALGS: &[&str] = &["RS256", "ES256"];

fn start(env: &Env, idps: &[&Idp]) -> Helperd {
    let h = env.start_helperd();
    for i in idps {
        env.wait_cached(&i.issuer());
    }
    h
}

fn rs(idp: &Idp, claims: Value) -> String {
    idp.sign(json!({"alg": "RS256"}), claims)
}

fn claims_with(idp: &Idp, user: &str, f: impl FnOnce(&mut Value)) -> Value {
    let mut c = idp.claims(user, "host-login");
    f(&mut c);
    c
}

fn helperd_log(h: &Helperd) -> String {
    std::fs::read_to_string(&h.log).unwrap()
}

/// `Admin`, `ADMIN`, `wheel`, `Docker` ... as user names are refused; as groups
/// they are dropped (logged) and the login goes on; NSS never serves them.
#[test]
fn reserved_names_never_become_users_or_groups() {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    let h = start(&env, &[&idp]);
    for name in ["Admin", "ADMIN", "admin", "wheel", "Docker", "sudo", "root", "a.d.m.i.n", "systemd-network", "uuidd"]
    {
        let t = rs(&idp, claims_with(&idp, name, |c| c["sub"] = json!(format!("u-{name}"))));
        let user = name.to_ascii_lowercase();
        let r = env.pam(&user, &t);
        let local = std::process::Command::new("getent").args(["passwd", &user]).output().unwrap().status.success();
        if local {
            // A local account (root, systemd-network ...): not the module's at all.
            assert!(!r.ok && !r.stderr.contains("result=allow"), "{name}: {}", r.stderr);
        } else {
            r.assert_denied("reserved-name");
        }
        assert!(!r.stdout.contains("successfully"), "{name}");
    }
    let groups = [
        "Admin",
        "ADMIN",
        "admin",
        "wheel",
        "Docker",
        "docker",
        "sudo",
        "adm",
        "Sales, EMEA",
        "CN=Admins,OU=x",
        "team:platform",
        "OPS Admins",
        "ops-admins",
        "devs",
    ];
    let t = rs(&idp, claims_with(&idp, "alice", |c| c["groups"] = json!(groups)));
    let r = env.pam("alice", &t);
    r.assert_allowed();
    let line = r.log().into_iter().find(|l| l.contains("auth result=allow")).unwrap().to_string();
    assert!(line.contains("groups=ops-admins,devs"), "{line}");
    assert!(line.contains("warnings:") && line.contains("dropped"), "{line}");
    assert!(helperd_log(&h).contains("account created"), "{}", helperd_log(&h));

    let ns = NssNs::at(&env.snapshot(), "files oidc", "files [SUCCESS=merge] oidc");
    let (ok, id) = ns.stdout(&["id", "alice"]);
    assert!(ok && id.contains("(ops-admins)") && id.contains("(devs)"), "{id}");
    for g in ["admin", "wheel", "docker", "sudo", "adm", "sales", "g-sales--emea"] {
        let (_, line) = ns.stdout(&["getent", "group", g]);
        assert!(!line.contains("alice"), "alice must not be in {g}: {line}");
        assert!(!id.contains(&format!("({g})")), "{g} in {id}");
    }
    for u in ["admin", "wheel", "docker"] {
        let (_, line) = ns.stdout(&["getent", "passwd", u]);
        assert!(!line.contains(":*:"), "no OIDC user {u}: {line}");
    }
}

/// Policy and NSS speak the same names: `OPS Admins` is not `ops-admins`;
/// `Contractors` is still caught by `denied_groups = ["contractors"]`.
#[test]
fn policy_uses_host_group_names_and_denies_fail_closed() {
    let idp = Idp::start();
    let env = Env::new(
        Config::new()
            .policy("allowed_groups", ["ops-admins"])
            .policy("denied_groups", ["contractors"])
            .issuer(Issuer::standard(&idp.issuer(), ALGS)),
    );
    let _h = start(&env, &[&idp]);
    let only_lookalike = rs(&idp, claims_with(&idp, "alice", |c| c["groups"] = json!(["OPS Admins"])));
    env.pam("alice", &only_lookalike).assert_denied("not-in-allowed-group");
    for denied in ["Contractors", "CONTRACTORS", "contractors"] {
        let t = rs(&idp, claims_with(&idp, "alice", |c| c["groups"] = json!(["ops-admins", denied])));
        let r = env.pam("alice", &t);
        r.assert_denied("in-denied-group");
    }
    let ok = rs(&idp, claims_with(&idp, "alice", |c| c["groups"] = json!(["ops-admins", "Sales, EMEA"])));
    env.pam("alice", &ok).assert_allowed();
}

/// The uid of a name is a keyed hash: a name ground against the old public
/// key no longer lands on the victim's uid; one ground with the real key (which
/// only root has) still never shares it — the later identity is refused.
#[test]
fn uids_cannot_be_steered_without_the_key() {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    // A small range so the test can grind collisions quickly.
    let (lo, hi) = (1_073_741_824u32, 1_073_741_824 + 99_999);
    env.edit(|c| c.accounts("uid_min", lo).accounts("uid_max", hi));
    let _h = start(&env, &[&idp]);
    let key = Env::id_key();
    let keyed = |n: &str| nss_snapshot::format::id_hash(&key, b"user", n.as_bytes(), lo, hi);
    // The review's attack: FNV-1a-64 with the public default key "pam-oidc".
    let fnv = |n: &str| {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for (i, part) in [&b"pam-oidc"[..], b"user", n.as_bytes()].iter().enumerate() {
            if i > 0 {
                h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
            }
            for &b in *part {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        lo + (h % u64::from(hi - lo + 1)) as u32
    };
    let grind = |f: &dyn Fn(&str) -> u32, target: u32| (0..5_000_000).map(|i| format!("m{i}")).find(|n| f(n) == target);
    let victim = "victim";
    let old_twin = grind(&fnv, fnv(victim)).expect("a twin under the public key");
    let sign_in =
        |name: &str| env.pam(name, &rs(&idp, claims_with(&idp, name, |c| c["sub"] = json!(format!("u-{name}")))));
    sign_in(&old_twin).assert_allowed();
    sign_in(victim).assert_allowed();
    let store = env.store();
    let uid = |n: &str| store.users.iter().find(|u| u.name == n).unwrap().uid;
    assert_ne!(uid(&old_twin), uid(victim), "the old attack misses");
    assert_eq!(uid(victim), keyed(victim));
    // With the key (root's secret), a collision is still refused, never shared.
    let new_victim = "victim2";
    let twin = grind(&keyed, keyed(new_victim)).expect("a twin under the real key");
    sign_in(&twin).assert_allowed();
    let r = sign_in(new_victim);
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("uid-collision"), "{}", r.stderr);
    // A key others can read is refused: new accounts wait until it is private again.
    use std::os::unix::fs::PermissionsExt;
    let kf = env.dir.0.join("id.key");
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = sign_in("carol");
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    sign_in("carol").assert_allowed();
}

/// A second trusted issuer can never take a name of the first: its name space
/// is its prefix, an unverified email never makes a name, its groups never
/// join the first issuer's groups.
#[test]
fn a_second_issuer_cannot_take_names_or_groups_of_the_first() {
    let (idp1, idp2) = (Idp::start(), Idp::start());
    let second = Issuer::new(&idp2.issuer())
        .set("audiences", ["host-login"])
        .set("username_claim", "email")
        .set("username_domain", "example.com")
        .set("name_prefix", "ext-");
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp1.issuer(), ALGS)).issuer(second));
    let _h = start(&env, &[&idp1, &idp2]);
    let mail = |verified: bool| {
        rs(
            &idp2,
            claims_with(&idp2, "mallory", |c| {
                c["email"] = json!("Alice@EXAMPLE.com");
                c["email_verified"] = json!(verified);
            }),
        )
    };
    env.pam("alice", &mail(false)).assert_denied("claim-condition");
    env.pam("alice", &mail(true)).assert_denied("user-mismatch");
    env.pam("ext-alice", &mail(true)).assert_allowed();
    // The real alice (first issuer) is not locked out.
    env.pam("alice", &idp1.token("host-login", "alice")).assert_allowed();
    // The first issuer cannot produce names in the second's name space.
    let t = rs(&idp1, claims_with(&idp1, "ext-bob", |c| c["sub"] = json!("u-ext-bob")));
    let r = env.pam("ext-bob", &t);
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("name-of-another-issuer"), "{}", r.stderr);
    // helperd itself refuses a report of the second issuer for `alice`.
    let req = login_request(&idp2.issuer(), "u-x", "alice", &[], "");
    match ipc_call(&env.socket(), &req, Duration::from_secs(5)).unwrap() {
        Response::Refused { code, .. } => assert_eq!(code, oidc_core::RefusalCode::NameOfAnotherIssuer),
        other => panic!("{other:?}"),
    }
    // ext-alice's `devs` (second issuer) is `ext-devs`, never alice's `devs` (first issuer).
    let ns = NssNs::at(&env.snapshot(), "files oidc", "files oidc");
    let (_, devs) = ns.stdout(&["getent", "group", "devs"]);
    assert!(devs.ends_with(":alice\n"), "{devs}");
    let (_, ext) = ns.stdout(&["getent", "group", "ext-devs"]);
    assert!(ext.ends_with(":ext-alice\n"), "{ext}");
}

#[test]
fn prelogin_names_are_namespaced_and_root_only() {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    // `*` is refused when the config is read.
    let bad = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    bad.edit(|c| c.accounts("prelogin_patterns", ["*"]));
    let out = std::process::Command::new(helperd_bin())
        .args(["--config".as_ref(), bad.config.as_os_str(), "run".as_ref()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prefix* or *suffix"), "{out:?}");

    env.prelogin(&["zoe", "uuidd", "Admin", "daemon"], &["dev-*"]);
    let _h = start(&env, &[&idp]);
    let ns = NssNs::at(&env.snapshot(), "files oidc", "files oidc");
    assert!(ns.stdout(&["getent", "passwd", "dev-newbie"]).0);
    assert!(ns.stdout(&["getent", "passwd", "zoe"]).0);
    // A package's system user is never answered (useradd --system uuidd works).
    assert!(!ns.stdout(&["getent", "passwd", "uuidd"]).0);
    assert!(!ns.stdout(&["getent", "passwd", "admin"]).0);
    assert!(!ns.stdout(&["getent", "passwd", "svc"]).0);
    // Only root can read the id key, so only root (sshd) resolves names before
    // login; names already in the snapshot (roster) resolve for everyone.
    let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "getent", "passwd"];
    assert!(ns.stdout(&[&nobody[..], &["zoe"]].concat()).0, "the snapshot is readable by everyone");
    let (ok, _) =
        ns.stdout(&["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "getent", "passwd", "dev-newbie"]);
    assert!(!ok, "an unprivileged caller cannot compute pre-login uids");
    // Nor a setuid-root program run by a user (real uid not root, effective root).
    let (ok, _) = ns.stdout(&["setpriv", "--ruid=65534", "getent", "passwd", "dev-newbie"]);
    assert!(!ok, "a setuid program's caller learns no pre-login uid");
    assert!(ns.stdout(&["getent", "passwd", "dev-newbie"]).0, "root (sshd) still does");
}

/// Access tokens and ID tokens of another client of the same IdP are not login tokens.
#[test]
fn access_tokens_and_foreign_azp_are_refused() {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    let _h = start(&env, &[&idp]);
    let at = idp.sign(json!({"alg": "RS256", "typ": "at+jwt"}), idp.claims("alice", "host-login"));
    env.pam("alice", &at).assert_denied("access-token");
    let foreign = rs(&idp, claims_with(&idp, "alice", |c| c["azp"] = json!("other-app")));
    env.pam("alice", &foreign).assert_denied("azp-mismatch");
    env.pam("alice", &idp.token("host-login", "alice")).assert_allowed();
}

/// Machine identities: GitHub-Actions-shaped and Kubernetes service-account
/// tokens log in only as the account a rule of their issuer names.
#[test]
fn workload_tokens_log_in_only_through_their_rules() {
    let (ci, people) = (Idp::start(), Idp::start());
    let workload = Issuer::new(&ci.issuer())
        .set("audiences", ["pam-oidc"])
        .set("user_accounts", false)
        .require("repository_owner_id", "1342004");
    let person = Issuer::new(&people.issuer()).set("audiences", ["pam-oidc", "host-login"]).set("name_prefix", "p-");
    let env = Env::new(Config::new().issuer(workload).issuer(person));
    env.edit(|c| {
        c.role_account(
            RoleAccount::new("deploy", &ci.issuer())
                .require("repository", "acme/infra")
                .require("ref", "refs/heads/main")
                .require("environment", "prod")
                .require("event_name", ["push", "workflow_dispatch"]),
        )
        .role_account(
            RoleAccount::new("k8s-deployer", &ci.issuer())
                .require("kubernetes.io.namespace", "ci")
                .require("kubernetes.io.serviceaccount.name", "deployer"),
        )
    });
    let _h = start(&env, &[&ci, &people]);
    let n = now();
    let gh = |f: &dyn Fn(&mut Value), idp: &Idp| {
        let mut c = json!({"iss": idp.issuer(), "aud": "pam-oidc", "sub": "repo:acme/infra:environment:prod",
            "exp": n + 300, "iat": n - 5, "repository": "acme/infra", "repository_owner": "acme",
            "repository_owner_id": "1342004", "ref": "refs/heads/main", "environment": "prod", "event_name": "push"});
        f(&mut c);
        rs(idp, c)
    };
    let r = env.pam("deploy", &gh(&|_| {}, &ci));
    r.assert_allowed();
    let line = r.log().into_iter().find(|l| l.contains("auth result=allow")).unwrap().to_string();
    assert!(line.contains("role account deploy via a claim rule") && line.contains("sub=repo:acme/infra"), "{line}");
    for (what, token) in [
        ("another repository", gh(&|c| c["repository"] = json!("acme/website"), &ci)),
        ("a feature branch", gh(&|c| c["ref"] = json!("refs/heads/feature"), &ci)),
        (
            "a pull_request event",
            gh(
                &|c| {
                    c["event_name"] = json!("pull_request");
                    c["ref"] = json!("refs/pull/7/merge");
                },
                &ci,
            ),
        ),
        (
            "a person of another issuer named deploy, with the same claims",
            gh(&|c| c["preferred_username"] = json!("deploy"), &people),
        ),
    ] {
        let r = env.pam("deploy", &token);
        assert!(!r.ok, "{what}: {}", r.stderr);
        r.assert_denied("no-account-rule");
    }
    env.pam("deploy", &gh(&|c| c["repository_owner_id"] = json!("666"), &ci)).assert_denied("claim-condition");
    env.pam("acme", &gh(&|_| {}, &ci)).assert_denied("no-account-rule");

    let k8s = |ns: &str, sa: &str| {
        rs(
            &ci,
            json!({"iss": ci.issuer(), "aud": "pam-oidc", "sub": format!("system:serviceaccount:{ns}:{sa}"),
                "exp": n + 600, "iat": n - 5, "nbf": n - 5, "repository_owner_id": "1342004",
                "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "8a1b"}}}),
        )
    };
    env.pam("k8s-deployer", &k8s("ci", "deployer")).assert_allowed();
    env.pam("k8s-deployer", &k8s("default", "deployer")).assert_denied("no-account-rule");
    env.pam("k8s-deployer", &k8s("ci", "builder")).assert_denied("no-account-rule");
    env.pam("deploy", &k8s("ci", "deployer")).assert_denied("no-account-rule");
}

/// Entra: the identity is `oid` (the pairwise `sub` differs per client);
/// group overage is logged as such.
#[test]
fn entra_oid_identity_survives_a_second_client_and_overage_is_logged() {
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS).set("identity_claim", "oid")));
    let h = start(&env, &[&idp]);
    let tok = |aud: &str, sub: &str, oid: &str| {
        let mut c = idp.claims("alice", aud);
        c["sub"] = json!(sub);
        c["oid"] = json!(oid);
        rs(&idp, c)
    };
    env.pam("alice", &tok("host-login", "pairwise-1", "oid-alice")).assert_allowed();
    env.pam("alice", &tok("host-login-es", "pairwise-2", "oid-alice")).assert_allowed();
    let store = env.store();
    assert_eq!(store.users.len(), 1);
    assert_eq!(store.users[0].sub, "oid-alice");
    let r = env.pam("alice", &tok("host-login", "pairwise-1", "oid-mallory"));
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("name-taken"), "{}", r.stderr);
    let mut c = idp.claims("alice", "host-login");
    c["oid"] = json!("oid-alice");
    c.as_object_mut().unwrap().remove("groups");
    c["_claim_names"] = json!({"groups": "src1"});
    let r = env.pam("alice", &rs(&idp, c));
    r.assert_allowed();
    assert!(r.stderr.contains("groups not in token: overage"), "{}", r.stderr);
    // `helperd rebind` moves the name when an app is re-created (new oid space).
    let req = Request::Rebind { name: "alice".into(), issuer: idp.issuer(), sub: "oid-alice-new".into() };
    assert!(matches!(ipc_call(&env.socket(), &req, Duration::from_secs(5)).unwrap(), Response::Rebound { .. }));
    env.pam("alice", &tok("host-login", "pairwise-9", "oid-alice-new")).assert_allowed();
    assert!(helperd_log(&h).contains("account rebound by uid=0"), "{}", helperd_log(&h));
}

/// Keycloak's `realm_access.roles` and Cognito's `cognito:groups` drive groups.
#[test]
fn keycloak_roles_and_cognito_groups_become_host_groups() {
    let (kc, cg) = (Idp::start(), Idp::start());
    let keycloak = Issuer::standard(&kc.issuer(), ALGS).set("groups_claim", "realm_access.roles");
    let cognito = Issuer::new(&cg.issuer())
        .set("audiences", ["host-login"])
        .set("username_claim", "cognito:username")
        .set("groups_claim", "cognito:groups")
        .set("name_prefix", "c-");
    let env = Env::new(Config::new().issuer(keycloak).issuer(cognito));
    let _h = start(&env, &[&kc, &cg]);
    let t = rs(&kc, claims_with(&kc, "alice", |c| c["realm_access"] = json!({"roles": ["ops", "offline_access"]})));
    env.pam("alice", &t).assert_allowed();
    let mut c = cg.claims("bob", "host-login");
    c["cognito:username"] = json!("bob");
    c["cognito:groups"] = json!(["builders"]);
    env.pam("c-bob", &rs(&cg, c)).assert_allowed();
    let ns = NssNs::at(&env.snapshot(), "files oidc", "files oidc");
    assert!(ns.stdout(&["getent", "group", "ops"]).1.ends_with(":alice\n"));
    assert!(ns.stdout(&["getent", "group", "c-builders"]).1.ends_with(":c-bob\n"), "the issuer's own group name space");
    let (_, id) = ns.stdout(&["id", "alice"]);
    assert!(!id.contains("(devs)"), "the groups claim is not read for this issuer: {id}");
}

/// Names and ids another NSS source (sss, ldap, systemd ...) already answers
/// for are never taken: helperd asks glibc at admission.
#[test]
fn names_and_ids_other_nss_sources_know_are_never_taken() {
    use nss_snapshot::format::{Group, User};
    let idp = Idp::start();
    let env = Env::new(Config::new().issuer(Issuer::standard(&idp.issuer(), ALGS)));
    let a = oidc_core::Accounts::default();
    let key = Env::id_key();
    let dave_uid = oidc_core::uid_for(&a, &key, "dave");
    let builders_gid = oidc_core::gid_for(&a, &key, "builders");
    // "Another source": a second snapshot the namespace's nsswitch lists after files.
    let other = integration::nss::NssNs::new("files oidc", "files oidc");
    let user = |name: &str, uid: u32| User {
        name: name.into(),
        uid,
        gid: uid,
        gecos: String::new(),
        dir: format!("/home/{name}"),
        shell: "/bin/sh".into(),
        groups: vec![],
    };
    other.write(
        &[user("carol", 70_001), user("svc-backup", dave_uid)],
        &[
            Group { name: "platform".into(), gid: 70_100, members: vec![] },
            Group { name: "ci-runners".into(), gid: builders_gid, members: vec![] },
        ],
    );
    let h = env.start_helperd_in(&other);
    env.wait_cached(&idp.issuer());
    let sign_in =
        |name: &str, groups: Value| env.pam(name, &rs(&idp, claims_with(&idp, name, |c| c["groups"] = groups)));
    let r = sign_in("carol", json!([]));
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("local-account") && r.stderr.contains("carol is a local account"), "{}", r.stderr);
    let r = sign_in("dave", json!([]));
    r.assert_denied("account-refused");
    assert!(r.stderr.contains("uid-collision"), "{}", r.stderr);
    let r = sign_in("erin", json!(["platform", "builders", "devs"]));
    r.assert_allowed();
    let line = r.log().into_iter().find(|l| l.contains("auth result=allow")).unwrap().to_string();
    assert!(line.contains("groups=devs"), "{line}");
    let log = helperd_log(&h);
    assert!(log.contains("group platform skipped") && log.contains("group builders skipped"), "{log}");
}

/// Review findings: a role rule naming a host group holds only for the host
/// group the token really gets (never a local group's name by coincidence);
/// a token whose group list is incomplete cannot slip past a deny list.
#[test]
fn role_rules_and_deny_lists_use_what_the_host_serves() {
    let idp = Idp::start();
    let env = Env::new(
        Config::new()
            .policy("denied_groups", ["contractors"])
            .issuer(Issuer::standard(&idp.issuer(), ALGS).map_group("db-admins", "dba"))
            .role_account(RoleAccount::new("dbadmin", &idp.issuer()).set("group", "dba")),
    );
    let group_file = env.dir.0.join("group");
    std::fs::write(&group_file, "root:x:0:\ndba:x:1500:\n").unwrap();
    env.edit(|c| c.accounts("group_file", group_file));
    let _h = start(&env, &[&idp]);
    let tok = |groups: Value| rs(&idp, claims_with(&idp, "mallory", |c| c["groups"] = groups));
    // The attacker's own IdP group named like the local group grants nothing.
    let r = env.pam("dbadmin", &tok(json!(["dba"])));
    r.assert_denied("no-account-rule");
    assert!(r.stderr.contains("a local group"), "{}", r.stderr);
    // The IdP group the operator mapped onto it does.
    env.pam("dbadmin", &tok(json!(["db-admins"]))).assert_allowed();
    // Group overage with a deny list set: refused (the list cannot be checked).
    let mut c = idp.claims("alice", "host-login");
    c.as_object_mut().unwrap().remove("groups");
    c["_claim_names"] = json!({"groups": "src1"});
    let r = env.pam("alice", &rs(&idp, c));
    r.assert_denied("in-denied-group");
    assert!(r.stderr.contains("incomplete"), "{}", r.stderr);
    // Dropped groups (not host names) with the denied group's letters are still denied.
    env.pam("mallory", &tok(json!(["devs", "Contractors:"]))).assert_denied("in-denied-group");
    env.pam("mallory", &tok(json!(["devs", "CONTRACTORS!"]))).assert_denied("in-denied-group");
    env.pam("mallory", &tok(json!(["devs", "Sales, EMEA"]))).assert_allowed();
}

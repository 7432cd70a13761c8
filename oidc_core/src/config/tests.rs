use super::*;
use crate::alg::Alg;

fn parse(t: &str) -> Result<Config, ConfigError> {
    Config::parse(t, Path::new("/etc/pam-oidc/config.toml"))
}

const MIN: &str = r#"version = 1
[[issuer]]
url = "https://idp.example"
audiences = ["a"]
"#;

#[test]
fn shipped_example_parses() {
    let c = parse(include_str!("../../../packaging/config.toml")).unwrap();
    assert_eq!(c.issuers.len(), 1);
    assert_eq!(c.issuers[0].algorithms, vec![Alg::RS256, Alg::ES256]);
    assert_eq!(c.pam.ipc_timeout_ms, 3000);
}

#[test]
fn defaults() {
    let c = parse(MIN).unwrap();
    let i = &c.issuers[0];
    assert_eq!(i.algorithms, vec![Alg::RS256, Alg::ES256]);
    assert_eq!(i.username_claim, "preferred_username");
    assert_eq!(i.leeway_secs, 60);
    assert_eq!(c.helperd.socket, Path::new("/run/pam-oidc/helperd.sock"));
    assert!(c.issuer("https://idp.example").is_some());
}

#[test]
fn errors_name_file_line_and_key() {
    let e = parse(&format!("{MIN}leeway = 5\n")).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.to_string().starts_with("/etc/pam-oidc/config.toml:5: key issuer.leeway"), "{e}");
    assert!(e.message.contains("unknown field"), "{e}");

    let e = parse(&format!("{MIN}leeway_secs = \"x\"\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(5), Some("issuer.leeway_secs")), "{e}");

    let e = parse(&format!("{MIN}algorithms = [\"RS256\", \"none\"]\n")).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("never allowed"), "{e}");

    let e = parse(&format!("{MIN}algorithms = [\"HS256\"]\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(5), Some("issuer[0].algorithms")), "{e}");
    assert!(e.message.contains("hmac_secret_file"), "{e}");

    let e = parse(&MIN.replace("version = 1", "version = 2")).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("version")), "{e}");

    let e = parse(&MIN.replace("https://idp.example", "http://idp.example")).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("issuer[0].url")), "{e}");
    assert!(parse(&MIN.replace("https://idp.example", "http://127.0.0.1:9000")).is_ok());

    let e = parse("version = 1\n").unwrap_err();
    assert!(e.message.contains("[[issuer]]"), "{e}");

    let e = parse(&format!("{MIN}\n[[issuer]]\nurl = \"https://two\"\naudiences = []\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(8), Some("issuer[1].audiences")), "{e}");

    let e = Config::load(Path::new("/nonexistent/pam-oidc.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/pam-oidc.toml: cannot read"), "{e}");
}

#[test]
fn aws_roles_parse_and_validate() {
    let aws = "\n[aws]\nregion = \"eu-west-1\"\n[[aws.role]]\ngroup = \"ops\"\nrole_arn = \"arn:aws:iam::1:role/ops\"\nsource = \"instance\"\ntags = { s = \"sub\" }\n";
    let c = parse(&format!("{MIN}{aws}")).unwrap();
    assert_eq!(c.aws.sts(), "https://sts.eu-west-1.amazonaws.com");
    assert_eq!(c.aws.role_for(&["x".into(), "ops".into()], "https://idp.example").unwrap().duration_secs, 3600);
    assert!(c.aws.role_for(&["x".into()], "https://idp.example").is_none());
    let scoped = parse(&format!("{MIN}{}issuer = \"https://idp.example\"\n", aws)).unwrap();
    assert!(scoped.aws.role_for(&["ops".into()], "https://other").is_none(), "another issuer's ops");
    assert!(scoped.aws.role_for(&["ops".into()], "https://idp.example").is_some());
    let e = parse(&format!("{MIN}{}issuer = \"https://nope\"\n", aws)).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("aws.role[0].issuer"), "{e}");
    let e = parse(&format!("{MIN}{}", aws.replace("arn:aws:iam::1:role/ops", "ops"))).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("aws.role[0].role_arn"), "{e}");
    let e = parse(&format!("{MIN}{}duration_secs = 60\n", aws)).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("aws.role[0].duration_secs"), "{e}");
    let e = parse(&format!("{MIN}{}", aws.replace("\"instance\"", "\"web_identity\""))).unwrap_err();
    assert!(e.message.contains("only sent with source"), "{e}");
}

/// Issue 11: configurations that would let a token land where it does not belong are refused.
#[test]
fn identity_model_validation() {
    let err = |extra: &str| parse(&format!("{MIN}{extra}")).unwrap_err();
    // Pre-login names only from a namespaced rule.
    for p in ["*", "a*", "*x", "d*v-*", "de?-*", "systemd-*", "_x-*", "dev*"] {
        let e = err(&format!("[accounts]\nprelogin_patterns = [\"{p}\"]\n"));
        assert_eq!(e.key.as_deref(), Some("accounts.prelogin_patterns"), "{p}: {e}");
    }
    for p in ["dev-*", "*-oidc", "*.ext"] {
        assert!(parse(&format!("{MIN}[accounts]\nprelogin_patterns = [\"{p}\"]\n")).is_ok(), "{p}");
    }
    // The public key of the old hash is gone; its replacement is a secret file.
    let e = err("[accounts]\nid_hash_key = \"pam-oidc\"\n");
    assert!(e.message.contains("id_key_file"), "{e}");
    // Group mapping is per issuer.
    let e = err("[groups]\nmap = { ops = \"sudo\" }\n");
    assert!(e.message.contains("[issuer.groups]"), "{e}");
    assert!(parse(&format!("{MIN}[issuer.groups]\nmap = {{ \"OPS Admins\" = \"ops-admins\" }}\n")).is_ok());
    // Role accounts are scoped to one configured issuer and need a condition.
    let e = err("[[role_account]]\nname = \"deploy\"\ngroup = \"deployers\"\n");
    assert_eq!(e.key.as_deref(), Some("role_account[0].issuer"), "{e}");
    let e = err("[[role_account]]\nname = \"deploy\"\nissuer = \"https://other\"\ngroup = \"d\"\n");
    assert!(e.message.contains("not a configured"), "{e}");
    let e = err("[[role_account]]\nname = \"deploy\"\nissuer = \"https://idp.example\"\n");
    assert_eq!(e.key.as_deref(), Some("role_account[0].require"), "{e}");
    assert!(parse(&format!(
        "{MIN}[[role_account]]\nname = \"deploy\"\nissuer = \"https://idp.example\"\n[role_account.require]\nrepository = \"acme/*\"\n"
    ))
    .is_ok());
    // Two issuers that make user accounts never share a name space.
    let two = |p1: &str, p2: &str| {
        format!("{MIN}name_prefix = \"{p1}\"\n[[issuer]]\nurl = \"https://two\"\naudiences = [\"a\"]\nname_prefix = \"{p2}\"\n")
    };
    assert!(parse(&two("", "")).unwrap_err().message.contains("share login names"));
    assert!(parse(&two("ext-", "ext-gh-")).unwrap_err().message.contains("share login names"));
    assert!(parse(&two("", "ext-")).is_ok());
    assert!(parse(&two("a-", "b-")).is_ok());
    let e = parse(&two("Bad", "")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("issuer[0].name_prefix"), "{e}");
    // Aliases are unique across issuers.
    let e = err("aliases = [\"https://idp.example\"]\n");
    assert_eq!(e.key.as_deref(), Some("issuer[0].aliases"), "{e}");
    // A template must be balanced.
    let e = err("username_template = \"gh-{repository_owner\"\n");
    assert_eq!(e.key.as_deref(), Some("issuer[0].username_template"), "{e}");
}

/// Issue 15 (1): a session is ended at its token's exp + grace only where
/// `on_expiry = "end"` holds for its issuer (the issuer's own setting wins).
#[test]
fn session_end_policy_per_issuer() {
    let two = format!("{MIN}\n[[issuer]]\nurl = \"https://ci.example\"\naudiences = [\"b\"]\nname_prefix = \"ci-\"\nsession_on_expiry = \"end\"\n");
    let c = parse(&two).unwrap();
    assert_eq!(c.session_ends_at("https://idp.example", 1000), None, "keep by default");
    assert_eq!(c.session_ends_at("https://ci.example", 1000), Some(1000));
    let c = parse(&format!("{two}\n[sessions]\non_expiry = \"end\"\ngrace_secs = 30\n")).unwrap();
    assert_eq!(c.session_ends_at("https://idp.example", 1000), Some(1030));
    let keep = two.replace("session_on_expiry = \"end\"", "session_on_expiry = \"keep\"");
    let c = parse(&format!("{keep}\n[sessions]\non_expiry = \"end\"\n")).unwrap();
    assert_eq!(c.session_ends_at("https://ci.example", 1000), None, "the issuer's keep wins");
    let e = parse(&format!("{MIN}\n[sessions]\nkill_after_secs = 0\n")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("sessions.kill_after_secs"), "{e}");
    assert!(parse(&format!("{MIN}\n[sessions]\non_expiry = \"kill\"\n")).is_err());
}

/// `[backchannel_logout]`: off by default; plain HTTP only on loopback; TLS
/// files go together; the path is a plain absolute path.
#[test]
fn backchannel_logout_listener() {
    let b = |t: &str| parse(&format!("{MIN}\n[backchannel_logout]\n{t}\n"));
    let c = parse(MIN).unwrap();
    assert_eq!(c.backchannel_logout.listen_addr(), None, "off by default");
    assert_eq!(c.backchannel_logout.path, "/backchannel-logout");
    for ok in ["listen = \"127.0.0.1:8443\"", "listen = \"[::1]:8443\"", "listen = \"127.0.0.2:9000\""] {
        assert!(b(ok).unwrap().backchannel_logout.listen_addr().is_some(), "{ok}");
    }
    let tls = "tls_cert_file = \"/etc/pam-oidc/cert.pem\"\ntls_key_file = \"/etc/pam-oidc/key.pem\"";
    assert!(b(&format!("listen = \"0.0.0.0:8443\"\n{tls}")).is_ok(), "any address with TLS");
    for (bad, key, says) in [
        ("listen = \"0.0.0.0:8443\"", "backchannel_logout.listen", "not a loopback address"),
        ("listen = \"10.0.0.5:8443\"", "backchannel_logout.listen", "plain HTTP is allowed only"),
        ("listen = \"localhost:8443\"", "backchannel_logout.listen", "an IP address and port"),
        ("listen = \"127.0.0.1\"", "backchannel_logout.listen", "an IP address and port"),
        ("listen = \"127.0.0.1:0\"", "backchannel_logout.listen", "a fixed port"),
        ("listen = \"0.0.0.0:8443\"\ntls_cert_file = \"/c.pem\"", "backchannel_logout.tls_cert_file", "go together"),
        (tls, "backchannel_logout.listen", "listen is not"),
        ("path = \"logout\"", "backchannel_logout.path", "absolute path"),
        ("path = \"/logout?x=1\"", "backchannel_logout.path", "no query"),
    ] {
        let e = b(bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{bad}: {e}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
    assert!(b("listen = \"127.0.0.1:8443\"\nport = 1").is_err(), "unknown keys refused");
}

/// Issue 16 (confidential clients): a device client secret file others may
/// read is refused when the config is loaded, naming the key; 0600 loads.
#[test]
fn a_readable_client_secret_file_is_refused_at_load() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("oidc-config-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("client.secret");
    std::fs::write(&secret, "x\n").unwrap();
    let cfg = dir.join("config.toml");
    let text = format!("{MIN}device_client_id = \"a\"\ndevice_client_secret_file = \"{}\"\n", secret.display());
    std::fs::write(&cfg, &text).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Config::load(&cfg).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("issuer[0].device_client_secret_file"), "{e}");
    assert!(e.message.contains("chmod 600") && e.line == Some(6), "{e}");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::load(&cfg).is_ok());
    let e = parse(&format!("{MIN}device_client_secret_file = \"/x\"\n")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("issuer[0].device_client_secret_file"), "without device_client_id: {e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 16 (push login): a CIBA client is one of the audiences and
/// authenticates (a secret or a key, not both); `ciba_login` needs it; the
/// login hint template names only the user; key files are root-only at load.
#[test]
fn ciba_clients_are_checked_at_load() {
    let bad = [
        ("ciba_client_id = \"nope\"\nciba_client_secret_file = \"/s\"\n", "ciba_client_id", "audiences"),
        ("ciba_client_id = \"a\"\n", "ciba_client_id", "ciba_client_secret_file or ciba_client_key_file"),
        (
            "ciba_client_id = \"a\"\nciba_client_secret_file = \"/s\"\nciba_client_key_file = \"/k\"\n",
            "ciba_client_key_file",
            "choose one",
        ),
        ("ciba_login = true\n", "ciba_login", "no ciba_client_id"),
        ("ciba_client_key_file = \"/k\"\n", "ciba_client_key_file", "no ciba_client_id"),
        ("device_client_key_file = \"/k\"\n", "device_client_key_file", "no device_client_id"),
        (
            "device_client_id = \"a\"\ndevice_client_key_file = \"/k\"\ndevice_client_secret_file = \"/s\"\n",
            "device_client_key_file",
            "choose one",
        ),
        (
            "ciba_client_id = \"a\"\nciba_client_key_file = \"/k\"\nciba_login_hint = \"{email}\"\n",
            "ciba_login_hint",
            "{user} or {name}",
        ),
        (
            "ciba_client_id = \"a\"\nciba_client_key_file = \"/k\"\nciba_login_hint = \"fixed\"\n",
            "ciba_login_hint",
            "{user} or {name}",
        ),
    ];
    for (extra, key, says) in bad {
        let e = parse(&format!("{MIN}{extra}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(format!("issuer[0].{key}").as_str()), "{extra}: {e}");
        assert!(e.message.contains(says), "{extra}: {e}");
    }
    let c = parse(&format!(
        "{MIN}ciba_client_id = \"a\"\nciba_client_key_file = \"/k\"\nciba_login = true\n\
         ciba_login_hint = \"{{name}}@example.com\"\nname_prefix = \"x-\"\n"
    ))
    .unwrap();
    assert_eq!(c.issuers[0].ciba_hint("x-alice"), "alice@example.com");

    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("oidc-config-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("client.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, format!("{MIN}ciba_client_id = \"a\"\nciba_client_key_file = \"{}\"\n", key.display()))
        .unwrap();
    let e = Config::load(&cfg).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("issuer[0].ciba_client_key_file"), "{e}");
    assert!(e.message.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::load(&cfg).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

use super::*;

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
    assert_eq!(c.aws.role_for(&["x".into(), "ops".into()]).unwrap().duration_secs, 3600);
    assert!(c.aws.role_for(&["x".into()]).is_none());
    let e = parse(&format!("{MIN}{}", aws.replace("arn:aws:iam::1:role/ops", "ops"))).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("aws.role[0].role_arn"), "{e}");
    let e = parse(&format!("{MIN}{}duration_secs = 60\n", aws)).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("aws.role[0].duration_secs"), "{e}");
    let e = parse(&format!("{MIN}{}", aws.replace("\"instance\"", "\"web_identity\""))).unwrap_err();
    assert!(e.message.contains("only sent with source"), "{e}");
}

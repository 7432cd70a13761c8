//! Module argument parsing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use pam_oidc::args::*;
use std::path::PathBuf;

fn p(v: &[&str]) -> Result<Args, String> {
    parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

#[test]
fn parses_known_and_refuses_unknown() {
    let a = p(&["config=/tmp/c.toml", "try_first_pass", "require_group=ops", "require_group=sre"]).unwrap();
    assert_eq!(a.config, PathBuf::from("/tmp/c.toml"));
    assert_eq!(a.source, TokenSource::TryFirstPass);
    assert_eq!(a.require_groups, ["ops", "sre"]);
    assert!(p(&["require_groups=ops"]).is_err());
    assert!(p(&["require_group="]).is_err());
    assert!(p(&["config=relative.toml"]).is_err());
    assert!(p(&["use_first_pass=1"]).is_err());
    assert_eq!(p(&[]).unwrap().config, PathBuf::from("/etc/pam-oidc/config.toml"));
}

/// doctor checks stacks against oidc_core's list: every listed name parses here.
#[test]
fn doctor_knows_every_argument() {
    for a in oidc_core::PAM_ARGUMENTS {
        let arg = match *a {
            "config=" => "config=/etc/pam-oidc/config.toml".to_string(),
            "max_age=" => "max_age=60".to_string(),
            x if x.ends_with('=') => format!("{x}v"),
            x => x.to_string(),
        };
        assert!(pam_oidc::args::parse(std::slice::from_ref(&arg)).is_ok(), "{arg}");
    }
}

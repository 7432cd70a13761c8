//! Login-name rules and group policy (pure).

use crate::config::Policy;
use crate::reason::Rejection;

pub use nss_snapshot::names::MAX_LOGIN_NAME;

/// A login name a token may make: [`nss_snapshot::names::portable_name`] (the
/// rule NSS serves by), with the reason when it is not one.
pub fn check_login_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() > MAX_LOGIN_NAME {
        return Err(format!("longer than {MAX_LOGIN_NAME} bytes"));
    }
    if !nss_snapshot::names::portable_name(name.as_bytes()) {
        return Err(format!("{name:?} is not a portable login name ([a-z_][a-z0-9_.-]*)"));
    }
    Ok(())
}

/// Group names as they come from the IdP: printable, no `:` or `,` (they would
/// corrupt group(5) lines and our env encoding), bounded.
pub fn check_group_name(g: &str) -> Result<(), String> {
    if g.is_empty() || g.len() > 256 {
        return Err("empty or longer than 256 bytes".into());
    }
    if g.chars().any(|c| c.is_control() || c == ':' || c == ',') {
        return Err(format!("{:?} contains a control character, ':' or ','", crate::audit::clean(g)));
    }
    Ok(())
}

/// Apply config policy plus per-stack `require_group` arguments (any one of
/// them suffices) to the host group names (`groups`, what NSS serves). A
/// deny list fails closed: a denied group also catches any of the token's own
/// groups (`probes`, [`crate::accounts::deny_probes`]: served or dropped, with
/// the issuer's prefix) that differs from it only in case or punctuation
/// (`Contractors`, `CONTRACTORS`, `contr-actors`), and a token whose group list
/// is incomplete (Entra overage) is refused while a deny list is set.
pub fn check_groups(
    groups: &[String],
    probes: &[String],
    policy: &Policy,
    require_any: &[String],
) -> Result<(), Rejection> {
    if let Some(g) = groups.iter().find(|g| policy.denied_groups.contains(g)) {
        return Err(Rejection::InDeniedGroup(g.clone()));
    }
    if !policy.denied_groups.is_empty() && probes.iter().any(|p| p == crate::accounts::INCOMPLETE) {
        return Err(Rejection::InDeniedGroup(
            "(unknown): the token's group list is incomplete (overage), so denied_groups cannot be checked".into(),
        ));
    }
    let sk = |s: &str| nss_snapshot::format::skeleton(s.as_bytes());
    for d in &policy.denied_groups {
        if let Some(g) = probes.iter().find(|g| sk(g) == sk(d)) {
            return Err(Rejection::InDeniedGroup(format!(
                "{d} (an IdP group of the same letters: {})",
                crate::audit::clean(g)
            )));
        }
    }
    for (need, what) in [(&policy.allowed_groups, "policy.allowed_groups"), (&require_any.to_vec(), "require_group")] {
        if !need.is_empty() && !groups.iter().any(|g| need.contains(g)) {
            let have =
                if groups.is_empty() { "no host groups".to_string() } else { format!("has {}", groups.join(",")) };
            return Err(Rejection::NotInAllowedGroup { want: format!("{} ({what}); {have}", need.join(",")) });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names() {
        for ok in ["alice", "_svc", "a.b-c_9", &"a".repeat(32)] {
            assert!(check_login_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", "9lives", "a:b", "a b", "a/b", "a\nb", "root$", &"a".repeat(33), "é"] {
            assert!(check_login_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn groups_policy() {
        let p = Policy { allowed_groups: vec!["devs".into(), "ops".into()], denied_groups: vec!["contractors".into()] };
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_groups(&g(&["devs"]), &[], &p, &[]).is_ok());
        assert_eq!(check_groups(&g(&["devs", "contractors"]), &[], &p, &[]).unwrap_err().code(), "in-denied-group");
        assert_eq!(check_groups(&g(&["sales"]), &[], &p, &[]).unwrap_err().code(), "not-in-allowed-group");
        assert_eq!(check_groups(&g(&["devs"]), &[], &p, &["ops".into()]).unwrap_err().code(), "not-in-allowed-group");
        assert!(check_groups(&g(&["devs", "ops"]), &[], &p, &["ops".into()]).is_ok());
        assert!(check_groups(&[], &[], &Policy::default(), &[]).is_ok());
        // `Contractors` (not a host group) is still denied by `contractors`.
        for idp in ["Contractors", "CONTRACTORS", "contr-actors"] {
            let e = check_groups(&g(&["devs"]), &g(&[idp, "devs"]), &p, &[]).unwrap_err();
            assert_eq!(e.code(), "in-denied-group", "{idp}");
        }
        let incomplete = vec![crate::accounts::INCOMPLETE.to_string()];
        assert_eq!(check_groups(&g(&["devs"]), &incomplete, &p, &[]).unwrap_err().code(), "in-denied-group");
        let no_deny = Policy { denied_groups: vec![], ..p.clone() };
        assert!(
            check_groups(&g(&["devs"]), &incomplete, &no_deny, &[]).is_ok(),
            "only a deny list needs the full list"
        );
        assert!(check_group_name("a:b").is_err());
        assert!(check_group_name("team ops").is_ok());
    }
}

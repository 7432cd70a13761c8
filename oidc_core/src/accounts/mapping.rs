//! What a verified token maps to on the host: its IdP groups → host groups,
//! the probes the deny list checks, and the account (own or role) it may enter.

use super::LocalDb;
use crate::config::{Config, Issuer};
use nss_snapshot::format::{is_reserved, skeleton};

/// One IdP group as the host serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    /// The host group name.
    pub name: String,
    /// The IdP group it comes from.
    pub raw: String,
    /// From an explicit `[issuer.groups] map` entry (only those may name a
    /// local, reserved or privileged group).
    pub explicit: bool,
}

/// IdP groups → host groups per the issuer's `[issuer.groups]`: prefix
/// filter/strip, allow-list, explicit map; otherwise (with `auto`) the IdP
/// group itself, behind the issuer's `name_prefix`, if that is a safe host
/// name (`[a-z_][a-z0-9_.-]*`, ≤ 32 bytes, not reserved, in the issuer's own
/// name space). Nothing is folded into
/// another name: `OPS Admins` or `Contractors` never become `ops-admins` or
/// `contractors` (map them explicitly), so two IdP groups never share a host
/// group. Dropped groups are reported (warnings) and the login goes on.
pub fn map_groups(raw: &[String], iss: &Issuer, cfg: &Config) -> (Vec<HostGroup>, Vec<String>) {
    let g = &iss.groups;
    let mut out: Vec<HostGroup> = vec![];
    let mut warnings = vec![];
    for r in raw {
        let Some(stripped) = r.strip_prefix(g.prefix.as_str()) else { continue };
        if stripped.is_empty() || (!g.allow.is_empty() && !g.allow.iter().any(|a| a == stripped)) {
            continue;
        }
        let hg = match g.map.get(stripped).or_else(|| g.map.get(r)) {
            Some(m) => HostGroup { name: m.clone(), raw: r.clone(), explicit: true },
            // An issuer without a name space of its own (role accounts only, no
            // prefix) makes no host groups but through its map.
            None if !g.auto || !iss.owns_names() => continue,
            None => {
                let name = format!("{}{stripped}", iss.name_prefix);
                if crate::policy::check_login_name(&name).is_err() {
                    warnings.push(format!(
                        "group {:?} dropped: not a host group name ([a-z_][a-z0-9_.-]*, at most 32 bytes); \
                         map it in [issuer.groups] map",
                        crate::audit::clean(r)
                    ));
                    continue;
                }
                if is_reserved(name.as_bytes()) {
                    warnings.push(format!("group {name} dropped: reserved on Linux hosts (map it explicitly)"));
                    continue;
                }
                if cfg.name_owner(&name).is_none_or(|o| o.url != iss.url) {
                    warnings.push(format!("group {name} dropped: in another issuer's name space"));
                    continue;
                }
                HostGroup { name, raw: r.clone(), explicit: false }
            }
        };
        if let Some(o) = out.iter().find(|o| o.name == hg.name) {
            if o.raw != hg.raw && !(o.explicit && hg.explicit) {
                warnings.push(format!(
                    "group {:?} dropped: host group {} already comes from {:?}",
                    crate::audit::clean(&hg.raw),
                    hg.name,
                    crate::audit::clean(&o.raw)
                ));
            }
            continue;
        }
        out.push(hg);
    }
    (out, warnings)
}

/// The host groups a token's groups can be on this host as far as the module
/// can tell (helperd has the last word): [`map_groups`], minus automatic names
/// the host already has (files), which are dropped with a warning.
pub fn host_groups(raw: &[String], iss: &Issuer, cfg: &Config, local: &LocalDb) -> (Vec<String>, Vec<String>) {
    let (mapped, mut warnings) = map_groups(raw, iss, cfg);
    let mut out = vec![];
    for h in mapped {
        match local.name_clash(&h.name) {
            Some(why) if !h.explicit => warnings.push(format!("group {} skipped: {why}", h.name)),
            _ => out.push(h.name),
        }
    }
    (out, warnings)
}

/// Marks a group list the token could not give in full (overage, a groups
/// claim of the wrong type): a deny list cannot be checked against it.
pub const INCOMPLETE: &str = "*incomplete";

/// What `denied_groups` is checked against besides the host groups: the
/// skeleton of every group string the token carried (served or dropped), as
/// is and as the issuer would name it (`name_prefix`, `groups.prefix`
/// stripped), and [`INCOMPLETE`] if the list is partial. Skeletons are
/// `[a-z0-9]` only, so the list is safe in `OIDC_IDP_GROUPS`.
pub fn deny_probes(iss: &Issuer, all_groups: &[String], incomplete: bool) -> Vec<String> {
    let sk = |s: &str| String::from_utf8_lossy(&skeleton(s.as_bytes())).into_owned();
    let mut out: Vec<String> = vec![];
    for g in all_groups {
        let stripped = g.strip_prefix(iss.groups.prefix.as_str()).unwrap_or(g);
        for p in [sk(g), sk(&format!("{}{g}", iss.name_prefix)), sk(&format!("{}{stripped}", iss.name_prefix))] {
            if !p.is_empty() && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    if incomplete {
        out.push(INCOMPLETE.into());
    }
    out
}

/// Which account a verified token may log in as, when the PAM user is `user`:
/// `Ok(None)` its own (user accounts of its issuer), `Ok(Some(why))` a role
/// account through a `[[role_account]]` rule of the token's issuer, or why not.
pub fn account_for(
    cfg: &Config,
    v: &crate::verify::Verified,
    user: &str,
    host_groups: &[String],
) -> Result<Option<String>, crate::Rejection> {
    let own = cfg.issuer(&v.issuer).is_some_and(|i| i.user_accounts) && !v.username.is_empty();
    if own && v.username == user {
        return Ok(None);
    }
    let mut why = vec![];
    for r in cfg.role_accounts.iter().filter(|r| r.name == user) {
        match r.grants(&v.issuer, &v.claims, host_groups) {
            Ok(()) => {
                let how = match &r.group {
                    Some(g) => format!("role account {user} via group {g} of {}", v.issuer),
                    None => format!("role account {user} via a claim rule of {}", v.issuer),
                };
                return Ok(Some(how));
            }
            Err(e) if !why.contains(&e) => why.push(e),
            Err(_) => {}
        }
    }
    if why.is_empty() && own {
        return Err(crate::Rejection::UserMismatch { token_user: v.username.clone(), pam_user: user.to_string() });
    }
    if why.is_empty() {
        why.push(format!("no [[role_account]] rule for {user}"));
    }
    Err(crate::Rejection::NoAccountRule { account: user.to_string(), why: why.join("; ") })
}

//! Doctor: the effective sshd settings the module needs (UsePAM,
//! keyboard-interactive), read as sshd reads them.

use super::{fail, Outcome};
use std::path::{Path, PathBuf};

/// Effective global sshd settings: first value wins (as in sshd), `Include`
/// followed, `Match` blocks ignored.
fn sshd_settings(path: &Path, out: &mut Vec<(String, String)>, depth: usize) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((k, v)) = line.split_once(|c: char| c.is_whitespace() || c == '=') else { continue };
        let (k, v) = (k.to_ascii_lowercase(), v.trim().trim_start_matches('=').trim().to_string());
        if k == "match" {
            break;
        }
        if k == "include" && depth < 4 {
            for pat in v.split_whitespace() {
                let pat = if pat.starts_with('/') { pat.to_string() } else { format!("/etc/ssh/{pat}") };
                for f in glob_files(&pat) {
                    let _ = sshd_settings(&f, out, depth + 1);
                }
            }
            continue;
        }
        if !out.iter().any(|(ok, _)| *ok == k) {
            out.push((k, v));
        }
    }
    Ok(())
}

/// `dir/*.conf`-style globs (a `*` in the file name only), sorted.
fn glob_files(pat: &str) -> Vec<PathBuf> {
    let p = Path::new(pat);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else { return vec![] };
    if !name.contains('*') {
        return vec![p.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| nss_snapshot::format::glob(name.as_bytes(), n.as_bytes()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn sshd(path: &Path) -> Outcome {
    let mut s = vec![];
    if let Err(e) = sshd_settings(path, &mut s, 0) {
        return fail(format!("cannot read {}: {e}", path.display()), "install openssh-server or pass --sshd-config");
    }
    let get = |k: &str| s.iter().find(|(x, _)| x == k).map(|(_, v)| v.to_ascii_lowercase());
    if get("usepam").as_deref() != Some("yes") {
        return fail("UsePAM is not yes: sshd never asks pam_oidc", format!("set `UsePAM yes` in {}", path.display()));
    }
    let kbd = get("kbdinteractiveauthentication").or_else(|| get("challengeresponseauthentication"));
    if kbd.as_deref() == Some("no") {
        return fail(
            "KbdInteractiveAuthentication no: the token prompt cannot be shown",
            "set `KbdInteractiveAuthentication yes`",
        );
    }
    if let Some(m) = get("authenticationmethods").filter(|m| m != "any" && !m.contains("keyboard-interactive")) {
        return fail(
            format!("AuthenticationMethods {m} has no keyboard-interactive"),
            "add keyboard-interactive to AuthenticationMethods",
        );
    }
    for k in ["allowusers", "allowgroups", "denyusers", "denygroups"] {
        if let Some(v) = get(k) {
            return fail(
                format!("{k} {v} is set: OIDC users it does not list are refused before PAM runs"),
                format!("remove {k}, or list the OIDC users/groups in it (groups from the groups claim resolve through nss_oidc)"),
            );
        }
    }
    Ok("UsePAM yes, keyboard-interactive allowed, no user/group filter".into())
}

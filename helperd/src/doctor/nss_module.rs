//! Processes still running a libnss_oidc.so.2 an upgrade replaced: its file
//! is gone from under them (`(deleted)` in /proc/PID/maps). When the release
//! changed the snapshot's format they refuse the new file (fail closed) and
//! resolve no OIDC account until they restart (install.md, "Upgrade").

use std::path::Path;

/// Is this /proc/PID/maps line a deleted libnss_oidc.so.2 in a system
/// library directory (where glibc loads NSS modules from, and only root
/// writes)? A user's own deleted copy elsewhere does not count.
fn replaced_module(line: &[u8]) -> bool {
    let Ok(line) = std::str::from_utf8(line) else { return false };
    let Some(path) = line.split_once(" /").map(|(_, p)| format!("/{p}")) else { return false };
    let Some(dir) = path.strip_suffix("/libnss_oidc.so.2 (deleted)") else { return false };
    let triplet = |d: &str| d.ends_with("-linux-gnu") && !d.contains('/');
    matches!(dir, "/usr/lib64" | "/lib64" | "/usr/lib" | "/lib")
        || dir.strip_prefix("/usr/lib/").or_else(|| dir.strip_prefix("/lib/")).is_some_and(triplet)
}

/// Processes (pid and name) under `proc_root` that map a deleted libnss_oidc.so.2.
pub fn stale_users(proc_root: &Path) -> Vec<(u32, String)> {
    let Ok(rd) = std::fs::read_dir(proc_root) else { return vec![] };
    let mut found: Vec<(u32, String)> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(proc_root.join(pid.to_string()).join("maps"))
                .is_ok_and(|m| m.split(|b| *b == b'\n').any(replaced_module))
        })
        .map(|pid| {
            let comm = std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).unwrap_or_default();
            (pid, oidc_core::clean(comm.trim_end()))
        })
        .collect();
    found.sort_unstable();
    found
}

/// The doctor check.
pub fn check(proc_root: &Path) -> super::Outcome {
    let stale = stale_users(proc_root);
    if stale.is_empty() {
        return Ok("no process runs a replaced libnss_oidc.so.2".into());
    }
    let shown: Vec<String> = stale.iter().take(10).map(|(p, c)| format!("{c} ({p})")).collect();
    let more = if stale.len() > 10 { format!(" and {} more", stale.len() - 10) } else { String::new() };
    super::fail(
        format!(
            "{} process(es) still run the libnss_oidc.so.2 an upgrade replaced: {}{more}; \
             after a snapshot format change they resolve no OIDC account",
            stale.len(),
            shown.join(", ")
        ),
        "restart them (systemctl restart the service each belongs to: systemctl status PID names it) or reboot",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_mapping_a_replaced_module_are_named() {
        let root = crate::testing::temp_dir("doctor-proc");
        let proc = |pid: u32, comm: &str, maps: &str| {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("maps"), maps).unwrap();
        };
        let lib = "/usr/lib/x86_64-linux-gnu/libnss_oidc.so.2";
        proc(1, "systemd", &format!("7f00-7f10 r-xp 00000000 fe:01 12 {lib}\n"));
        proc(812, "systemd-logind", &format!("7f00-7f10 r-xp 00000000 fe:01 12 {lib} (deleted)\n"));
        proc(9, "cron\x1b[31m", &format!("7f00-7f10 r--p 00000000 fe:01 12 {lib} (deleted)\n"));
        proc(40, "other", "7f00-7f10 r--p 00000000 fe:01 12 /usr/lib/libfoo.so (deleted)\n");
        // A user's own copy, mapped and deleted elsewhere, is not the installed module.
        proc(41, "mine", "7f00-7f10 r--p 00000000 fe:01 12 /tmp/x/libnss_oidc.so.2 (deleted)\n");
        proc(42, "mine", "7f00-7f10 r--p 00000000 fe:01 12 /usr/lib/../../tmp/libnss_oidc.so.2 (deleted)\n");
        proc(43, "rpm", "7f00-7f10 r--p 00000000 fe:01 12 /usr/lib64/libnss_oidc.so.2 (deleted)\n");
        std::fs::create_dir_all(root.join("self")).unwrap();
        assert!(check(&root).is_err());
        let stale = stale_users(&root);
        assert_eq!(stale.iter().map(|s| s.0).collect::<Vec<_>>(), [9, 43, 812]);
        assert!(!stale[0].1.contains('\x1b'), "{:?}", stale[0].1);
        std::fs::remove_dir_all(root.join("812")).unwrap();
        std::fs::remove_dir_all(root.join("9")).unwrap();
        std::fs::remove_dir_all(root.join("43")).unwrap();
        assert!(check(&root).is_ok());
        std::fs::remove_dir_all(root).unwrap();
    }
}

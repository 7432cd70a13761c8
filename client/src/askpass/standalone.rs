//! The askpass run by a plain ssh or sudo: one process per prompt, no parent
//! of ours to ask. The `OIDC token:` prompt gets a fresh token; when it takes
//! more than one part, the token is kept for the `(part N)` prompts in a 0600
//! file in a private (0700) directory of the user's, named for the asking
//! process (ssh's pid and start time), and deleted when the last part is sent.

use super::{part as nth, PART_BYTES};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use zeroize::Zeroizing;

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `$XDG_RUNTIME_DIR/pam-oidc`, else `~/.cache/pam-oidc/run` (never a
/// name in /tmp another user could take first): a directory of ours that
/// only we may enter.
pub fn state_dir() -> Result<PathBuf, String> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let runtime = var("XDG_RUNTIME_DIR").filter(|d| d.is_dir());
    let dir = state_path(runtime, var("XDG_CACHE_HOME"), var("HOME"))?;
    if let Some(parent) = dir.parent().filter(|_| !dir.starts_with(var("XDG_RUNTIME_DIR").unwrap_or_default())) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    let m = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !m.is_dir() || m.uid() != euid() || m.mode() & 0o077 != 0 {
        return Err(format!("{}: not a private directory of yours (0700)", dir.display()));
    }
    Ok(dir)
}

/// Where the parts of a token wait: `$XDG_RUNTIME_DIR/pam-oidc`, else the
/// cache's `pam-oidc/run` — never a fixed name in a shared directory.
pub fn state_path(runtime: Option<PathBuf>, cache: Option<PathBuf>, home: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(r) = runtime {
        return Ok(r.join("pam-oidc"));
    }
    let cache = cache.or_else(|| home.map(|h| h.join(".cache"))).ok_or("neither XDG_RUNTIME_DIR nor HOME is set")?;
    Ok(cache.join("pam-oidc").join("run"))
}

/// A process's start time (clock ticks after boot), from /proc/PID/stat.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

fn key_of(pid: u32) -> Option<String> {
    Some(format!("askpass-{pid}-{}", start_time(pid)?))
}

fn parent_key() -> Result<String, String> {
    key_of(std::os::unix::process::parent_id()).ok_or_else(|| "the asking process is gone".to_string())
}

/// Remove the files of processes that no longer run (an ssh killed between parts).
fn sweep(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let live = name
            .strip_prefix("askpass-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(key_of)
            .is_some_and(|k| k == name);
        if name.starts_with("askpass-") && !live {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub fn first(fetch: &dyn Fn() -> Result<Zeroizing<String>, String>) -> Result<Zeroizing<String>, String> {
    // A token of one part needs no state: nothing is written (or needed).
    let token = fetch()?;
    if token.len() <= PART_BYTES {
        return nth(&token, 1).map(Zeroizing::new).ok_or_else(|| "the token is not ASCII".into());
    }
    first_in(&state_dir()?, &move || Ok(token.clone()))
}

pub fn part(n: usize) -> Result<Zeroizing<String>, String> {
    part_in(&state_dir()?, n)
}

pub(super) fn first_in(
    dir: &std::path::Path,
    fetch: &dyn Fn() -> Result<Zeroizing<String>, String>,
) -> Result<Zeroizing<String>, String> {
    let token = fetch()?;
    sweep(dir);
    let path = dir.join(parent_key()?);
    let _ = std::fs::remove_file(&path);
    if token.len() > PART_BYTES {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(token.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    nth(&token, 1).map(Zeroizing::new).ok_or_else(|| "the token is too long".into())
}

pub(super) fn part_in(dir: &std::path::Path, n: usize) -> Result<Zeroizing<String>, String> {
    let path = dir.join(parent_key()?);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|_| format!("no token is being sent (part {n} asked)"))?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    if m.uid() != euid() || m.mode() & 0o077 != 0 {
        return Err(format!("{}: not a private file of yours", path.display()));
    }
    let mut token = Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut f, &mut token).map_err(|e| e.to_string())?;
    let reply = nth(&token, n).ok_or_else(|| format!("the token has no part {n}"))?;
    if !reply.ends_with('\\') {
        let _ = std::fs::remove_file(&path);
    }
    Ok(Zeroizing::new(reply))
}

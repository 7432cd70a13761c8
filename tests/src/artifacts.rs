//! Where the built artifacts are: pam_oidc.so, libnss_oidc.so, helperd, the
//! client command pam-oidc and the fault-injection module. `scripts/build` builds them all (`scripts/test` runs it).

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub(crate) fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// `debug` (what scripts/build makes), or `release` with
/// `PAM_OIDC_ARTIFACTS=release` (the benchmarks).
fn artifact(rel: &str) -> PathBuf {
    let rel = match std::env::var("PAM_OIDC_ARTIFACTS").as_deref() {
        Ok("release") => rel.replacen("debug/", "release/", 1),
        _ => rel.to_string(),
    };
    let p = target().join(rel);
    assert!(p.exists(), "{} is missing: run scripts/test (or cargo build --workspace) first", p.display());
    p
}

pub fn module_so() -> PathBuf {
    artifact("debug/libpam_oidc.so")
}

/// pam_oidc.so built with `--features fault-injection` (built by `scripts/build`).
pub fn fault_module_so() -> PathBuf {
    artifact("fault-injection/libpam_oidc.so")
}

pub fn nss_so() -> PathBuf {
    artifact("debug/libnss_oidc.so")
}

pub fn helperd_bin() -> PathBuf {
    artifact("debug/helperd")
}

/// The client command `pam-oidc` (the `client` crate).
pub fn client_bin() -> PathBuf {
    artifact("debug/pam-oidc")
}

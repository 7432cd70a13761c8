//! One crypto stack (issue 17): ring, which rustls already brings to helperd and
//! the client, and which `oidc_core::crypto` plugs into jsonwebtoken. A second
//! backend (aws-lc through jsonwebtoken's `aws_lc_rs` feature, RustCrypto's
//! through `rust_crypto`, OpenSSL) would double what every binary carries —
//! aws-lc was ~2.2 MB of pam_oidc.so. `deny.toml` bans them too; this reads the
//! lock files so a plain `cargo test` notices. (aws-sigv4 in helperd brings
//! RustCrypto's `sha2` and `hmac` for SigV4 request signing: hashes, no
//! signature scheme; it has no option to use ring.)

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers

use std::path::Path;

fn packages(lock: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["version"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn ring_is_the_only_crypto_stack_in_both_lock_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for lock in [root.join("Cargo.lock"), root.join("fuzz/Cargo.lock")] {
        let p = packages(&lock);
        let other: Vec<_> = p
            .iter()
            .filter(|(n, _)| {
                n.starts_with("aws-lc")
                    || ["openssl", "openssl-sys", "boring", "boring-sys", "rsa", "p256", "p384", "ed25519-dalek"]
                        .contains(&n.as_str())
            })
            .collect();
        assert!(other.is_empty(), "{}: a second crypto stack: {other:?}", lock.display());
        let ring: Vec<_> = p.iter().filter(|(n, _)| n == "ring").collect();
        assert_eq!(ring.len(), 1, "{}: {ring:?}", lock.display());
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// jsonwebtoken's process default panics until `oidc_core::crypto::install`
/// ran. Product code verifies through `oidc_core::crypto::verify` (no global)
/// and signs through `oidc_core::crypto::{sign, encode}` (which install): no
/// other door to the global may open outside tests.
#[test]
fn product_code_never_reaches_jsonwebtokens_uninstalled_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let doors = [
        "jsonwebtoken::encode",
        "jsonwebtoken::decode",
        "jsonwebtoken::crypto::",
        "from_encoding_key",
        "from_decoding_key",
        ".thumbprint(",
    ];
    let mut files = vec![];
    for c in ["oidc_core/src", "pam_oidc/src", "helperd/src", "nss_oidc/src", "client/src"] {
        rust_files(&root.join(c), &mut files);
    }
    for f in files {
        let name = f.to_string_lossy();
        if name.ends_with("oidc_core/src/crypto.rs") || name.contains("/tests") || name.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // A `#[cfg(test)] mod` closes the file in this code base.
        let product = text.split("#[cfg(test)]\nmod").next().unwrap_or("");
        for d in doors {
            assert!(!product.contains(d), "{name} uses {d} outside tests: go through oidc_core::crypto");
        }
    }
}

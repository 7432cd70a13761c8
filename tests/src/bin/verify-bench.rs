//! Token verification benchmark (run by scripts/bench), per algorithm, three ways:
//!
//!   sig           jsonwebtoken's signature check alone (ring, through oidc_core's
//!                 provider), key parsed once (the floor)
//!   verify        oidc_core: parse + strict JSON + key selection + signature + every
//!                 claim check, keys in memory (the key re-parsed per call, as the module does)
//!   verify_token  the module's path: also reads the JWKS cache file (and the HMAC
//!                 secret file for HS256) from disk, as every PAM authentication does
//!
//!   verify-bench KEYDIR COUNT     KEYDIR holds rsa.pem, p256.pem, p384.pem, ed25519.pem
//!
//! Prints one line per algorithm: `alg=… bytes=… sig_ns=… verify_ns=… verify_token_ns=…`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench tool

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use oidc_core::Config;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

const ISS: &str = "https://idp.bench";

fn time(count: u32, mut f: impl FnMut() -> bool) -> f64 {
    for _ in 0..count / 10 {
        assert!(f());
    }
    let t = Instant::now();
    for _ in 0..count {
        assert!(f());
    }
    t.elapsed().as_nanos() as f64 / f64::from(count)
}

fn main() {
    oidc_core::crypto::install(); // jsonwebtoken's globals (Jwk::from_encoding_key, crypto::verify)
    let a: Vec<String> = std::env::args().collect();
    let (dir, count) = (Path::new(&a[1]), a[2].parse::<u32>().unwrap());
    let pem = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let secret = b"bench-hmac-secret-0123456789abcdef".to_vec();
    let algs: Vec<(&str, Algorithm, EncodingKey)> = vec![
        ("RS256", Algorithm::RS256, EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap()),
        ("RS384", Algorithm::RS384, EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap()),
        ("RS512", Algorithm::RS512, EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap()),
        ("PS256", Algorithm::PS256, EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap()),
        ("ES256", Algorithm::ES256, EncodingKey::from_ec_pem(&pem("p256.pem")).unwrap()),
        ("ES384", Algorithm::ES384, EncodingKey::from_ec_pem(&pem("p384.pem")).unwrap()),
        ("EdDSA", Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem("ed25519.pem")).unwrap()),
        ("HS256", Algorithm::HS256, EncodingKey::from_secret(&secret)),
    ];
    // One issuer's JWKS with every asymmetric key, each under its own kid.
    let mut keys = vec![];
    for (name, alg, ek) in &algs {
        if *alg == Algorithm::HS256 {
            continue;
        }
        let mut jwk = Jwk::from_encoding_key(ek, *alg).unwrap();
        jwk.common.key_id = Some(format!("k-{name}"));
        keys.push(serde_json::to_value(&jwk).unwrap());
    }
    let work = std::env::temp_dir().join(format!("pam-oidc-verify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let secret_file = work.join("hmac.secret");
    std::fs::write(&secret_file, &secret).unwrap();
    std::fs::set_permissions(&secret_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let names: Vec<String> = algs.iter().map(|(n, _, _)| format!("\"{n}\"")).collect();
    let cfg = Config::parse(
        &format!(
            "version = 1\n[helperd]\ncache_dir = \"{}\"\n[[issuer]]\nurl = \"{ISS}\"\naudiences = [\"host\"]\nalgorithms = [{}]\nhmac_secret_file = \"{}\"\n",
            work.display(),
            names.join(","),
            secret_file.display()
        ),
        Path::new("bench.toml"),
    )
    .unwrap();
    let now = 1_800_000_000;
    let cache = oidc_core::CacheFile {
        v: 1,
        issuer: ISS.into(),
        jwks_uri: format!("{ISS}/jwks"),
        fetched_at: now,
        expires_at: now + 3600,
        jwks: json!({ "keys": keys }),
    };
    let cache_path = oidc_core::jwks_cache_path(&work, ISS);
    std::fs::create_dir_all(cache_path.parent().unwrap()).unwrap();
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    let jwks = oidc_core::Jwks::from_value(&cache.jwks).unwrap();
    // A typical ID token: ~1 KB with a dozen groups.
    let groups: Vec<String> = (0..12).map(|i| format!("team-{i:02}-engineering")).collect();
    let claims = json!({"iss": ISS, "sub": "00u1a2b3c4d5e6f7g8h9", "aud": "host", "exp": now + 300, "iat": now - 5,
        "auth_time": now - 5, "preferred_username": "alice", "email": "alice@example.com", "name": "Alice Example",
        "groups": groups, "jti": "4f1c6a0e-2b7d-4c55-9a43-8e2f0d6b9c11", "acr": "urn:mace:incommon:iap:silver", "amr": ["pwd", "mfa"]});
    for (name, alg, ek) in &algs {
        let mut h = jsonwebtoken::Header::new(*alg);
        if *alg != Algorithm::HS256 {
            h.kid = Some(format!("k-{name}"));
        }
        let token = oidc_core::crypto::encode(&h, &claims, ek).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let dk = if *alg == Algorithm::HS256 {
            DecodingKey::from_secret(&secret)
        } else {
            jwks.select(Some(&format!("k-{name}")), oidc_core::Alg::parse(name).unwrap()).unwrap()[0]
                .decoding_key()
                .unwrap()
        };
        let n = if matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::HS256
                | Algorithm::EdDSA
        ) {
            count
        } else {
            count / 2
        };
        let sig_ns = time(n, || jsonwebtoken::crypto::verify(sig, input.as_bytes(), &dk, *alg).unwrap());
        let icfg = &cfg.issuers[0];
        let verify_ns = time(n, || {
            let p = oidc_core::parse_token(&token, 16384).unwrap();
            let keys = oidc_core::Keys { jwks: Some(&jwks), hmac_secret: Some(&secret) };
            oidc_core::verify(&p, icfg, keys, now, &mut Default::default()).is_ok()
        });
        let mut no_refresh = |_: &str| Err("no helperd".to_string());
        let vt_ns = time(n, || oidc_core::verify_token(&cfg, &token, now, &mut no_refresh).result.is_ok());
        println!(
            "alg={name} bytes={} sig_ns={sig_ns:.0} verify_ns={verify_ns:.0} verify_token_ns={vt_ns:.0}",
            token.len()
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

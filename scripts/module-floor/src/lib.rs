//! See Cargo.toml: a floor for pam_oidc.so's size, not product code.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: u64,
    groups: Vec<String>,
}

static ALGS: [&dyn VerificationAlgorithm; 9] = [
    &signature::RSA_PKCS1_2048_8192_SHA256,
    &signature::RSA_PKCS1_2048_8192_SHA384,
    &signature::RSA_PKCS1_2048_8192_SHA512,
    &signature::RSA_PSS_2048_8192_SHA256,
    &signature::RSA_PSS_2048_8192_SHA384,
    &signature::RSA_PSS_2048_8192_SHA512,
    &signature::ECDSA_P256_SHA256_FIXED,
    &signature::ECDSA_P384_SHA384_FIXED,
    &signature::ED25519,
];

/// # Safety
/// `p` points to `n` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn floor_verify(p: *const u8, n: usize, alg: usize) -> i32 {
    std::panic::catch_unwind(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { std::slice::from_raw_parts(p, n) };
        let (Some(a), Some(key), Some(sig), Some(msg)) = (ALGS.get(alg), b.get(..64), b.get(64..128), b.get(128..))
        else {
            return -1;
        };
        let ok = UnparsedPublicKey::new(*a, key).verify(msg, sig).is_ok();
        match serde_json::from_slice::<Claims>(msg) {
            Ok(c) if ok => i32::from(!c.iss.is_empty() && !c.sub.is_empty() && !c.aud.is_empty() && c.exp > 0 && c.groups.len() < 9),
            _ => -1,
        }
    })
    .unwrap_or(-2)
}

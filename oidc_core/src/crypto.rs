//! The product's one crypto stack: ring (the same ring 0.17 rustls uses in
//! helperd and the client), behind jsonwebtoken 11's `CryptoProvider`.
//!
//! jsonwebtoken is built with neither of its backends (`aws_lc_rs`,
//! `rust_crypto`), so nothing is built in: its process default is a provider
//! that *panics* on first use unless one was installed. Two ways in:
//!
//! * [`verify`] and [`sign`] call this provider directly, with no global state:
//!   token, logout-token and SET verification go through [`verify`], so the PAM
//!   module's verification never depends on what was installed.
//! * [`install`] makes [`PROVIDER`] jsonwebtoken's process default, for the
//!   paths that go through jsonwebtoken's globals (`encode`, `decode`,
//!   `crypto::sign`, JWK thumbprints): helperd's client assertions, tests,
//!   benches, the fuzz harness. It is idempotent and cheap (one atomic load
//!   once set); [`sign`] and [`encode`] call it first. [`verify`] does not, on
//!   purpose: [`PROVIDER`] names every signer, so referring to it would link
//!   RSA/ECDSA/Ed25519 signing into pam_oidc.so, which only verifies. Product
//!   code reaches jsonwebtoken's globals only through [`encode`] (helperd's
//!   client assertions); `tests/crypto_stack.rs` fails on any other use outside
//!   tests, which would panic on the un-installed default.
//!
//! Inside a PAM module the default is a Rust static of *this* .so: jsonwebtoken
//! is linked statically into pam_oidc.so, and a cdylib exports only its
//! `pam_sm_*` symbols (every Rust symbol is local), so neither the host (sshd,
//! sudo) nor another Rust module with its own jsonwebtoken can see, interpose or
//! pre-install it. The module is linked with `-z nodelete`, so the static lives
//! as long as the process and one install lasts; were the module unloaded and
//! loaded again, the fresh copy of the static would be installed again by the
//! first [`verify`].
//!
//! What the provider refuses (errors, never panics): a key of another family
//! than the algorithm's (an RSA or EC public key used as an HMAC secret, an
//! HMAC secret as a public key, an Ed25519 key for ES256, ...), an algorithm
//! jsonwebtoken may add later, RSA moduli outside 2048–8192 bits (ring's
//! `*_2048_8192_*` verifiers; as aws-lc's before), ECDSA signatures in any
//! form but JWS's fixed-width `r || s` (no ASN.1), signatures or tags of the
//! wrong length.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{Error as SigError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature as rs;
use ring::{digest, hmac};

/// jsonwebtoken's crypto, backed by ring. See the module docs.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_components_from_private_key,
        compute_digest,
    },
};

/// Make [`PROVIDER`] jsonwebtoken's process default. Idempotent: the first
/// call installs it, later calls change nothing. (No other provider exists in
/// this tree — jsonwebtoken is built without its backends — so a refusal can
/// only mean ours is already there.)
pub fn install() {
    let _already = PROVIDER.install_default();
}

/// SHA-256 of `data` (32 bytes).
pub fn sha256(data: &[u8]) -> impl AsRef<[u8]> {
    digest::digest(&digest::SHA256, data)
}

/// jsonwebtoken's `crypto::verify` through [`PROVIDER`], without its global:
/// `Ok(true)` if `signature` (base64url, no padding) is `key`'s signature of
/// `message` under `alg`; `Ok(false)` if not; an error if the signature is
/// not base64url or the key does not fit the algorithm.
pub fn verify(signature: &str, message: &[u8], key: &DecodingKey, alg: Algorithm) -> Result<bool> {
    let sig = URL_SAFE_NO_PAD.decode(signature).map_err(|e| Error::from(ErrorKind::Provider(e.to_string())))?;
    let check = Check::new(alg, key)?;
    Ok(check.verify(key, message, &sig))
}

/// jsonwebtoken's `crypto::sign` through [`PROVIDER`]: the base64url signature.
pub fn sign(message: &[u8], key: &EncodingKey, alg: Algorithm) -> Result<String> {
    install();
    let s = new_signer(&alg, key)?;
    let sig = s.try_sign(message).map_err(|e| Error::from(ErrorKind::Signing(e.to_string())))?;
    Ok(URL_SAFE_NO_PAD.encode(sig))
}

/// `jsonwebtoken::encode` with [`PROVIDER`] installed first.
pub fn encode<T: serde::Serialize>(header: &jsonwebtoken::Header, claims: &T, key: &EncodingKey) -> Result<String> {
    install();
    jsonwebtoken::encode(header, claims, key)
}

fn bad_key() -> Error {
    ErrorKind::InvalidKeyFormat.into()
}

/// The ring algorithm for `alg`, after checking that the key's family is the
/// algorithm's (this is where a key of one type can never verify another).
#[derive(Clone, Copy)]
enum Check {
    Hmac(hmac::Algorithm),
    Rsa(&'static rs::RsaParameters),
    Public(&'static dyn rs::VerificationAlgorithm),
}

impl Check {
    fn new(alg: Algorithm, key: &DecodingKey) -> Result<Check> {
        let (family, check) = match alg {
            Algorithm::HS256 => (AlgorithmFamily::Hmac, Check::Hmac(hmac::HMAC_SHA256)),
            Algorithm::HS384 => (AlgorithmFamily::Hmac, Check::Hmac(hmac::HMAC_SHA384)),
            Algorithm::HS512 => (AlgorithmFamily::Hmac, Check::Hmac(hmac::HMAC_SHA512)),
            Algorithm::RS256 => (AlgorithmFamily::Rsa, Check::Rsa(&rs::RSA_PKCS1_2048_8192_SHA256)),
            Algorithm::RS384 => (AlgorithmFamily::Rsa, Check::Rsa(&rs::RSA_PKCS1_2048_8192_SHA384)),
            Algorithm::RS512 => (AlgorithmFamily::Rsa, Check::Rsa(&rs::RSA_PKCS1_2048_8192_SHA512)),
            Algorithm::PS256 => (AlgorithmFamily::Rsa, Check::Rsa(&rs::RSA_PSS_2048_8192_SHA256)),
            Algorithm::PS384 => (AlgorithmFamily::Rsa, Check::Rsa(&rs::RSA_PSS_2048_8192_SHA384)),
            Algorithm::PS512 => (AlgorithmFamily::Rsa, Check::Rsa(&rs::RSA_PSS_2048_8192_SHA512)),
            Algorithm::ES256 => (AlgorithmFamily::Ec, Check::Public(&rs::ECDSA_P256_SHA256_FIXED)),
            Algorithm::ES384 => (AlgorithmFamily::Ec, Check::Public(&rs::ECDSA_P384_SHA384_FIXED)),
            Algorithm::EdDSA => (AlgorithmFamily::Ed, Check::Public(&rs::ED25519)),
            _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
        };
        if key.family() != family {
            return Err(bad_key());
        }
        // Only RSA keys come as (n, e); a secret, a point or an Ed25519 key is bytes.
        match (check, key.kind()) {
            (Check::Rsa(_), _) | (_, DecodingKeyKind::SecretOrDer(_)) => Ok(check),
            _ => Err(bad_key()),
        }
    }

    fn verify(self, key: &DecodingKey, message: &[u8], sig: &[u8]) -> bool {
        match (self, key.kind()) {
            (Check::Hmac(a), DecodingKeyKind::SecretOrDer(secret)) => {
                hmac::verify(&hmac::Key::new(a, secret), message, sig).is_ok()
            }
            (Check::Rsa(p), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                // ring refuses leading zero bytes; a JWK's `n` sometimes has one
                // (aws-lc took it): the number is the same without it.
                let c = rs::RsaPublicKeyComponents { n: strip_zeros(n), e: strip_zeros(e) };
                c.verify(p, message, sig).is_ok()
            }
            // DER RSAPublicKey (PKCS#1), as jsonwebtoken's PEM reader gives it.
            (Check::Rsa(p), DecodingKeyKind::SecretOrDer(der)) => {
                rs::UnparsedPublicKey::new(p, der).verify(message, sig).is_ok()
            }
            // An EC point (uncompressed SEC1) or an Ed25519 public key.
            (Check::Public(a), DecodingKeyKind::SecretOrDer(bytes)) => {
                rs::UnparsedPublicKey::new(a, bytes).verify(message, sig).is_ok()
            }
            _ => false,
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

/// A verifier for jsonwebtoken's globals (`decode`, `crypto::verify`).
struct RingVerifier {
    alg: Algorithm,
    check: Check,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SigError> {
        if self.check.verify(&self.key, msg, signature) {
            Ok(())
        } else {
            Err(SigError::new())
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let check = Check::new(*alg, key)?;
    Ok(Box::new(RingVerifier { alg: *alg, check, key: key.clone() }))
}

enum SignKey {
    Hmac(hmac::Key),
    Rsa(rs::RsaKeyPair, &'static dyn rs::RsaEncoding),
    Ec(rs::EcdsaKeyPair),
    Ed(rs::Ed25519KeyPair),
}

struct RingSigner {
    alg: Algorithm,
    key: SignKey,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SigError> {
        let rng = SystemRandom::new();
        match &self.key {
            SignKey::Hmac(k) => Ok(hmac::sign(k, msg).as_ref().to_vec()),
            SignKey::Rsa(k, enc) => {
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(*enc, &rng, msg, &mut out).map_err(|_| SigError::new())?;
                Ok(out)
            }
            SignKey::Ec(k) => Ok(k.sign(&rng, msg).map_err(|_| SigError::new())?.as_ref().to_vec()),
            SignKey::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// An RSA private key: PKCS#1 DER (what jsonwebtoken's PEM reader gives for
/// both PKCS#1 and PKCS#8 PEM), else PKCS#8 DER.
fn rsa_key_pair(der: &[u8]) -> Result<rs::RsaKeyPair> {
    rs::RsaKeyPair::from_der(der)
        .or_else(|_| rs::RsaKeyPair::from_pkcs8(der))
        .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()).into())
}

fn ec_key_pair(alg: Algorithm, pkcs8: &[u8]) -> Result<rs::EcdsaKeyPair> {
    let a = match alg {
        Algorithm::ES256 => &rs::ECDSA_P256_SHA256_FIXED_SIGNING,
        Algorithm::ES384 => &rs::ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    rs::EcdsaKeyPair::from_pkcs8(a, pkcs8, &SystemRandom::new()).map_err(|_| ErrorKind::InvalidEcdsaKey.into())
}

fn ed_key_pair(pkcs8: &[u8]) -> Result<rs::Ed25519KeyPair> {
    // PKCS#8 v1 (no public key: what OpenSSL writes) or v2.
    rs::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| ErrorKind::InvalidEddsaKey.into())
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let alg = *alg;
    if key.family() != alg.family() {
        return Err(bad_key());
    }
    let b = key.as_bytes();
    let hmac_key = |a| SignKey::Hmac(hmac::Key::new(a, b));
    let k = match alg {
        Algorithm::HS256 => hmac_key(hmac::HMAC_SHA256),
        Algorithm::HS384 => hmac_key(hmac::HMAC_SHA384),
        Algorithm::HS512 => hmac_key(hmac::HMAC_SHA512),
        Algorithm::RS256 => SignKey::Rsa(rsa_key_pair(b)?, &rs::RSA_PKCS1_SHA256),
        Algorithm::RS384 => SignKey::Rsa(rsa_key_pair(b)?, &rs::RSA_PKCS1_SHA384),
        Algorithm::RS512 => SignKey::Rsa(rsa_key_pair(b)?, &rs::RSA_PKCS1_SHA512),
        Algorithm::PS256 => SignKey::Rsa(rsa_key_pair(b)?, &rs::RSA_PSS_SHA256),
        Algorithm::PS384 => SignKey::Rsa(rsa_key_pair(b)?, &rs::RSA_PSS_SHA384),
        Algorithm::PS512 => SignKey::Rsa(rsa_key_pair(b)?, &rs::RSA_PSS_SHA512),
        Algorithm::ES256 | Algorithm::ES384 => SignKey::Ec(ec_key_pair(alg, b)?),
        Algorithm::EdDSA => SignKey::Ed(ed_key_pair(b)?),
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(Box::new(RingSigner { alg, key: k }))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let c = rs::RsaPublicKeyComponents::<Vec<u8>>::from(rsa_key_pair(der)?.public());
    Ok((c.n, c.e))
}

/// Not offered (ring parses an RSA public key only to verify with it);
/// nothing here turns a DER public key into a JWK.
fn rsa_components_from_public_key(_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::Provider("RSA public key components from DER are not supported".into()).into())
}

fn ec_components_from_private_key(pkcs8: &[u8], alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (curve, len) = match alg {
        Algorithm::ES256 => (EllipticCurve::P256, 32),
        Algorithm::ES384 => (EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let kp = ec_key_pair(alg, pkcs8)?;
    match rs::KeyPair::public_key(&kp).as_ref().split_first() {
        Some((4, xy)) if xy.len() == 2 * len => Ok((curve, xy[..len].to_vec(), xy[len..].to_vec())),
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_components_from_private_key(pkcs8: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    match curve {
        EllipticCurve::Ed25519 => Ok(rs::KeyPair::public_key(&ed_key_pair(pkcs8)?).as_ref().to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], h: ThumbprintHash) -> Result<Vec<u8>> {
    let a = match h {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::Provider("unsupported thumbprint hash".into()).into()),
    };
    Ok(digest::digest(a, data).as_ref().to_vec())
}

/// Whether `point` (uncompressed SEC1: `04 || x || y`) is a point of `crv`
/// (`P-256`, `P-384`) other than infinity. ring checks points only while it
/// uses them, so this runs one ECDH with a fresh ephemeral key: ring validates
/// the peer's point first (NIST SP 800-56A partial validation) and fails only
/// on that, the ephemeral key being generated before. An error (not `false`)
/// if the check cannot run: an unknown curve, or no randomness.
pub(crate) fn ec_point_valid(crv: &str, point: &[u8]) -> std::result::Result<bool, String> {
    use ring::agreement as ag;
    let alg = match crv {
        "P-256" => &ag::ECDH_P256,
        "P-384" => &ag::ECDH_P384,
        other => return Err(format!("unsupported curve {other:?}")),
    };
    let mine = ag::EphemeralPrivateKey::generate(alg, &SystemRandom::new())
        .map_err(|_| "no randomness to check the EC point with".to_string())?;
    Ok(ag::agree_ephemeral(mine, &ag::UnparsedPublicKey::new(alg, point), |_| ()).is_ok())
}

#[cfg(test)]
mod tests;

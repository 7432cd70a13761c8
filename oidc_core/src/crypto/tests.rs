use super::*;
use crate::alg::{Alg, ALL};
use serde_json::Value;

const MSG: &[u8] = b"header.payload";
const SECRET: &[u8] = b"a-shared-secret-of-at-least-32-bytes";

fn keys() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/test-keys.json")).unwrap()
}

fn pem(name: &str) -> Vec<u8> {
    keys()[name]["pem"].as_str().unwrap().as_bytes().to_vec()
}

fn jwk(name: &str, field: &str) -> String {
    keys()[name]["jwk"][field].as_str().unwrap().to_string()
}

/// A P-384 key made here (the fixtures have none): PKCS#8 DER and its public point.
fn p384() -> (EncodingKey, DecodingKey) {
    let pkcs8 = rs::EcdsaKeyPair::generate_pkcs8(&rs::ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    let (_, x, y) = ec_components_from_private_key(pkcs8.as_ref(), Algorithm::ES384).unwrap();
    let dk = DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y)).unwrap();
    (EncodingKey::from_ec_der(pkcs8.as_ref()), dk)
}

/// A signing and a verification key for every algorithm alg.rs accepts.
fn pair(a: Alg) -> (EncodingKey, DecodingKey) {
    match a {
        Alg::HS256 | Alg::HS384 | Alg::HS512 => (EncodingKey::from_secret(SECRET), DecodingKey::from_secret(SECRET)),
        Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => (
            EncodingKey::from_rsa_pem(&pem("rsa")).unwrap(),
            DecodingKey::from_rsa_components(&jwk("rsa", "n"), &jwk("rsa", "e")).unwrap(),
        ),
        Alg::ES256 => (
            EncodingKey::from_ec_pem(&pem("ec")).unwrap(),
            DecodingKey::from_ec_components(&jwk("ec", "x"), &jwk("ec", "y")).unwrap(),
        ),
        Alg::ES384 => p384(),
        Alg::EdDSA => {
            (EncodingKey::from_ed_pem(&pem("ed")).unwrap(), DecodingKey::from_ed_components(&jwk("ed", "x")).unwrap())
        }
    }
}

#[test]
fn every_accepted_algorithm_signs_and_verifies_with_ring() {
    for a in ALL {
        let (ek, dk) = pair(a);
        let sig = sign(MSG, &ek, a.to_jwt()).unwrap_or_else(|e| panic!("{a}: {e}"));
        assert!(verify(&sig, MSG, &dk, a.to_jwt()).unwrap(), "{a}");
        assert!(!verify(&sig, b"header.payloaD", &dk, a.to_jwt()).unwrap(), "{a}: other message");
        let mut raw = URL_SAFE_NO_PAD.decode(&sig).unwrap();
        raw[0] ^= 1;
        assert!(!verify(&URL_SAFE_NO_PAD.encode(&raw), MSG, &dk, a.to_jwt()).unwrap(), "{a}: flipped bit");
        raw.pop();
        assert!(!verify(&URL_SAFE_NO_PAD.encode(&raw), MSG, &dk, a.to_jwt()).unwrap(), "{a}: short");
        // jsonwebtoken's own globals reach the same provider once installed.
        install();
        assert!(jsonwebtoken::crypto::verify(&sig, MSG, &dk, a.to_jwt()).unwrap(), "{a}: global");
        let global = jsonwebtoken::crypto::sign(MSG, &ek, a.to_jwt()).unwrap();
        assert!(verify(&global, MSG, &dk, a.to_jwt()).unwrap(), "{a}: signed through the global");
    }
}

#[test]
fn a_key_never_verifies_under_another_family() {
    for a in ALL {
        let (ek, _) = pair(a);
        let sig = sign(MSG, &ek, a.to_jwt()).unwrap();
        for b in ALL {
            let (_, dk) = pair(b);
            if a.to_jwt().family() == b.to_jwt().family() {
                continue;
            }
            assert!(verify(&sig, MSG, &dk, a.to_jwt()).is_err(), "{a} signature, {b}'s key: not an error");
            assert!(new_verifier(&a.to_jwt(), &dk).is_err(), "{a} verifier with {b}'s key");
            let (other_ek, _) = pair(b);
            assert!(sign(MSG, &other_ek, a.to_jwt()).is_err(), "{a} signed with {b}'s key");
        }
    }
    // The classic confusion: an HS256 tag made with the RSA public key's bytes
    // as the secret, checked against the RSA key under HS256.
    let n = URL_SAFE_NO_PAD.decode(jwk("rsa", "n")).unwrap();
    let tag = sign(MSG, &EncodingKey::from_secret(&n), Algorithm::HS256).unwrap();
    let rsa = DecodingKey::from_rsa_components(&jwk("rsa", "n"), &jwk("rsa", "e")).unwrap();
    assert!(verify(&tag, MSG, &rsa, Algorithm::HS256).is_err());
    let rsa_der = DecodingKey::from_rsa_der(&n);
    assert!(verify(&tag, MSG, &rsa_der, Algorithm::HS256).is_err());
    // And a P-256 key is not a P-384 key (same family: the signature decides).
    let (ek256, dk256) = pair(Alg::ES256);
    let s = sign(MSG, &ek256, Algorithm::ES256).unwrap();
    assert!(!verify(&s, MSG, &dk256, Algorithm::ES384).unwrap());
    assert!(sign(MSG, &ek256, Algorithm::ES384).is_err());
}

/// ring's verifiers take 2048–8192-bit moduli, as aws-lc's did: a genuine
/// PKCS#1 v1.5 SHA-256 signature of MSG by a 1024-bit key (made with openssl)
/// is refused.
#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let n = "5dvkiL3Owa5xI4L4ASO0ORCpUrWIxCGPxlgPLySyDYu-MVBAN--JbseifGmsDXxTimD0fW1I09AWXU4qfk7hvN0NSE-L2Ryu_hFFFphBm3K3af_XjVZf3OWGolEdVjjVhFKsC54p00k80zeqVOzKonFPh-neCneAp5YWsZILhoc";
    let sig = "1GZhSagi6KRNjw7Pr8Jdqrr4bxiPAZoPgm3jzMCK6S43Z0UrFKMGYXhDzdayUnqOFoZ1tNYKSy3araEitrYru3Z2D-0mhGjOp1L5NT9n6LW1W0ci4POPtTW-IPK0OjEEKildZE5JhDNr-l-v1d_REWwt5GU4AkgpSeS01HQuutU";
    let dk = DecodingKey::from_rsa_components(n, "AQAB").unwrap();
    assert!(!verify(sig, MSG, &dk, Algorithm::RS256).unwrap());
}

#[test]
fn a_modulus_with_a_leading_zero_byte_is_the_same_key() {
    let (ek, _) = pair(Alg::RS256);
    let sig = sign(MSG, &ek, Algorithm::RS256).unwrap();
    let mut n = vec![0u8];
    n.extend(URL_SAFE_NO_PAD.decode(jwk("rsa", "n")).unwrap());
    let e = URL_SAFE_NO_PAD.decode(jwk("rsa", "e")).unwrap();
    assert!(verify(&sig, MSG, &DecodingKey::from_rsa_raw_components(&n, &e), Algorithm::RS256).unwrap());
}

#[test]
fn ecdsa_signatures_are_fixed_width_never_asn1() {
    let (ek, dk) = pair(Alg::ES256);
    let pkcs8 = ek.as_bytes();
    let der = rs::EcdsaKeyPair::from_pkcs8(&rs::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &SystemRandom::new())
        .unwrap()
        .sign(&SystemRandom::new(), MSG)
        .unwrap();
    assert_ne!(der.as_ref().len(), 64);
    assert!(!verify(&URL_SAFE_NO_PAD.encode(der.as_ref()), MSG, &dk, Algorithm::ES256).unwrap());
    let fixed = sign(MSG, &ek, Algorithm::ES256).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(&fixed).unwrap().len(), 64);
    // r = 0 or s = 0 is never a signature.
    let mut raw = URL_SAFE_NO_PAD.decode(&fixed).unwrap();
    raw[32..].fill(0);
    assert!(!verify(&URL_SAFE_NO_PAD.encode(&raw), MSG, &dk, Algorithm::ES256).unwrap());
}

#[test]
fn malformed_input_is_an_error_or_false_never_a_panic() {
    let (ek, dk) = pair(Alg::RS256);
    let sig = sign(MSG, &ek, Algorithm::RS256).unwrap();
    assert!(verify(&format!("{sig}="), MSG, &dk, Algorithm::RS256).is_err(), "padding");
    assert!(verify("a+b/", MSG, &dk, Algorithm::RS256).is_err(), "standard base64");
    assert!(!verify("", MSG, &dk, Algorithm::RS256).unwrap());
    for a in ALL {
        for bytes in [&b""[..], &[0u8; 1][..], &[4u8; 65][..], &[0xffu8; 600][..]] {
            let junk = match a.key_kind() {
                crate::alg::KeyKind::Hmac => DecodingKey::from_secret(bytes),
                crate::alg::KeyKind::Rsa => DecodingKey::from_rsa_der(bytes),
                crate::alg::KeyKind::Ec(_) => DecodingKey::from_ec_der(bytes),
                crate::alg::KeyKind::Okp(_) => DecodingKey::from_ed_der(bytes),
            };
            let _ = verify(&sig, MSG, &junk, a.to_jwt());
            let _ = sign(MSG, &EncodingKey::from_rsa_der(bytes), a.to_jwt());
            let _ = sign(MSG, &EncodingKey::from_ec_der(bytes), a.to_jwt());
            let _ = sign(MSG, &EncodingKey::from_ed_der(bytes), a.to_jwt());
        }
    }
}

#[test]
fn key_utils_make_jwks_and_thumbprints() {
    use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
    install();
    let (ek, _) = pair(Alg::RS256);
    let j = Jwk::from_encoding_key(&ek, Algorithm::RS256).unwrap();
    match &j.algorithm {
        AlgorithmParameters::RSA(p) => {
            assert_eq!((p.n.as_str(), p.e.as_str()), (jwk("rsa", "n").as_str(), jwk("rsa", "e").as_str()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(j.thumbprint(ThumbprintHash::SHA256).unwrap().len(), 43);
    let j = Jwk::from_encoding_key(&pair(Alg::ES256).0, Algorithm::ES256).unwrap();
    match &j.algorithm {
        AlgorithmParameters::EllipticCurve(p) => assert_eq!(p.x, jwk("ec", "x")),
        other => panic!("{other:?}"),
    }
    let j = Jwk::from_encoding_key(&pair(Alg::EdDSA).0, Algorithm::EdDSA).unwrap();
    match &j.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => assert_eq!(p.x, jwk("ed", "x")),
        other => panic!("{other:?}"),
    }
    assert!(rsa_components_from_public_key(&[0x30, 0]).is_err());
    assert_eq!(
        compute_digest(b"abc", ThumbprintHash::SHA256).unwrap(),
        sha256(b"abc").as_ref().to_vec(),
        "one SHA-256 for thumbprints and replay ids"
    );
    assert_eq!(sha256(b"abc").as_ref()[..4], [0xba, 0x78, 0x16, 0xbf], "FIPS 180-2 test vector");
}

#[test]
fn ec_points_are_checked_on_their_curve() {
    let x = URL_SAFE_NO_PAD.decode(jwk("ec", "x")).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk("ec", "y")).unwrap();
    let point = |a: &[u8], b: &[u8]| [&[4u8][..], a, b].concat();
    assert_eq!(ec_point_valid("P-256", &point(&x, &y)), Ok(true));
    assert_eq!(ec_point_valid("P-256", &point(&y, &x)), Ok(false));
    assert_eq!(ec_point_valid("P-384", &point(&x, &y)), Ok(false));
    assert_eq!(ec_point_valid("P-256", &point(&[0; 32], &[0; 32])), Ok(false));
    assert_eq!(ec_point_valid("P-256", &x), Ok(false), "x alone, no 04 prefix");
    assert!(ec_point_valid("P-521", &point(&x, &y)).is_err());
    let (_, dk384) = p384();
    assert_eq!(ec_point_valid("P-384", dk384.try_get_as_bytes().unwrap()), Ok(true));
    assert_eq!(ec_point_valid("P-256", dk384.try_get_as_bytes().unwrap()), Ok(false));
}

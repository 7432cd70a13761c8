//! JWK sets: lenient parsing (one odd key never hides the others), strict key
//! selection (by `kid`, and only a key whose type and curve fit the token's
//! `alg`), and the on-disk cache format helperd writes and the module reads.

use crate::alg::{Alg, KeyKind};
use crate::reason::Rejection;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One usable public key from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The JWK's `kid`; a token with a `kid` is checked only against the key of that `kid`.
    pub kid: Option<String>,
    /// The JWK's own `alg`, if it pins one.
    pub alg: Option<String>,
    /// The public key itself.
    pub material: Material,
}

/// Public key material by JWK type (`kty`), base64url as in the JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// `kty: RSA`.
    Rsa {
        /// The modulus.
        n: String,
        /// The public exponent.
        e: String,
    },
    /// `kty: EC`.
    Ec {
        /// The curve name; only `P-256` and `P-384` fit an algorithm.
        crv: String,
        /// The point's x coordinate.
        x: String,
        /// The point's y coordinate.
        y: String,
    },
    /// `kty: OKP`.
    Okp {
        /// The curve name; only `Ed25519` fits an algorithm.
        crv: String,
        /// The public key.
        x: String,
    },
}

impl Key {
    fn fits(&self, alg: Alg) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        match (alg.key_kind(), &self.material) {
            (KeyKind::Rsa, Material::Rsa { .. }) => true,
            (KeyKind::Ec(c), Material::Ec { crv, .. }) => crv == c,
            (KeyKind::Okp(c), Material::Okp { crv, .. }) => crv == c,
            _ => false,
        }
    }

    /// The key as a JWK again (what helperd caches: accepted keys only).
    pub fn to_jwk(&self) -> Value {
        let mut o = serde_json::Map::new();
        let mut put = |k: &str, v: &str| {
            o.insert(k.into(), Value::String(v.into()));
        };
        match &self.material {
            Material::Rsa { n, e } => {
                put("kty", "RSA");
                put("n", n);
                put("e", e);
            }
            Material::Ec { crv, x, y } => {
                put("kty", "EC");
                put("crv", crv);
                put("x", x);
                put("y", y);
            }
            Material::Okp { crv, x } => {
                put("kty", "OKP");
                put("crv", crv);
                put("x", x);
            }
        }
        put("use", "sig");
        if let Some(k) = &self.kid {
            put("kid", k);
        }
        if let Some(a) = &self.alg {
            put("alg", a);
        }
        Value::Object(o)
    }

    /// The key in jsonwebtoken's form; [`Rejection::NoUsableKey`] if the material does not decode.
    pub fn decoding_key(&self) -> Result<DecodingKey, Rejection> {
        let r = match &self.material {
            Material::Rsa { n, e } => DecodingKey::from_rsa_components(n, e),
            Material::Ec { x, y, .. } => DecodingKey::from_ec_components(x, y),
            Material::Okp { x, .. } => DecodingKey::from_ed_components(x),
        };
        r.map_err(|e| Rejection::NoUsableKey(format!("key material unreadable: {e}")))
    }
}

/// The public signing keys of one issuer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    /// The keys accepted, in JWKS order.
    pub keys: Vec<Key>,
    /// Keys skipped while parsing, with why (reported by check-token / helperd logs).
    pub skipped: Vec<String>,
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

impl Jwks {
    /// Parse `{"keys":[...]}`. Keys that are not public signing keys of a type
    /// we support are skipped (symmetric `oct` keys are never taken from a JWKS).
    pub fn from_value(v: &Value) -> Result<Jwks, String> {
        let arr = v.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
        let mut out = Jwks::default();
        for (i, k) in arr.iter().enumerate() {
            match parse_key(k) {
                Ok(key) => out.keys.push(key),
                Err(why) => out.skipped.push(format!("key {i} ({}): {why}", s(k, "kid").unwrap_or("no kid"))),
            }
        }
        Ok(out)
    }

    /// A JWKS as the IdP serves it (helperd before it replaces a cache, doctor):
    /// [`Jwks::from_value`], and a key counts only if its material is
    /// well-formed (`check_material`), so a JWKS of garbage keys has no usable
    /// key. Readers of the cache helperd wrote skip this (it is not free: EC
    /// points are decoded) — it ran before the cache was written.
    pub fn from_idp(v: &Value) -> Result<Jwks, String> {
        let parsed = Jwks::from_value(v)?;
        let mut out = Jwks { keys: vec![], skipped: parsed.skipped };
        for k in parsed.keys {
            match check_material(&k.material) {
                Ok(()) => out.keys.push(k),
                Err(why) => out.skipped.push(format!("key {}: {why}", k.kid.as_deref().unwrap_or("(no kid)"))),
            }
        }
        Ok(out)
    }

    /// [`Jwks::from_idp`] of a response body.
    pub fn from_idp_body(b: &[u8]) -> Result<Jwks, String> {
        let v: Value = serde_json::from_slice(b).map_err(|e| e.to_string())?;
        Jwks::from_idp(&v)
    }

    /// The keys to try for a token. With a `kid`, only that key (and only if it
    /// fits `alg`); without one, every key that fits `alg` (at most
    /// [`MAX_KIDLESS_KEYS`]: the signature decides which, if any, signed it).
    pub fn select(&self, kid: Option<&str>, alg: Alg) -> Result<Vec<&Key>, Rejection> {
        match kid {
            Some(kid) => {
                let mut same_kid = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if same_kid.peek().is_none() {
                    return Err(Rejection::UnknownKid(kid.to_string()));
                }
                same_kid.find(|k| k.fits(alg)).map(|k| vec![k]).ok_or_else(|| {
                    Rejection::NoUsableKey(format!("key {kid} does not fit alg {alg} (type or curve mismatch)"))
                })
            }
            None => {
                let fit: Vec<&Key> = self.keys.iter().filter(|k| k.fits(alg)).collect();
                match fit.len() {
                    0 => Err(Rejection::NoUsableKey(format!("no key fits alg {alg}"))),
                    n if n > MAX_KIDLESS_KEYS => Err(Rejection::NoUsableKey(format!(
                        "token has no kid and {n} keys fit alg {alg} (at most {MAX_KIDLESS_KEYS} are tried)"
                    ))),
                    _ => Ok(fit),
                }
            }
        }
    }
}

/// A `kid`-less token is tried against at most this many keys.
pub const MAX_KIDLESS_KEYS: usize = 8;

fn parse_key(k: &Value) -> Result<Key, String> {
    if let Some(u) = s(k, "use") {
        if u != "sig" {
            return Err(format!("use {u:?} is not sig"));
        }
    }
    let field = |name: &str| -> Result<String, String> {
        match s(k, name) {
            Some(v) if !v.is_empty() && v.len() <= 2048 => Ok(v.to_string()),
            _ => Err(format!("missing or bad {name}")),
        }
    };
    let material = match s(k, "kty") {
        Some("RSA") => Material::Rsa { n: field("n")?, e: field("e")? },
        Some("EC") => Material::Ec { crv: field("crv")?, x: field("x")?, y: field("y")? },
        Some("OKP") => Material::Okp { crv: field("crv")?, x: field("x")? },
        Some("oct") => return Err("symmetric keys are never taken from a JWKS".into()),
        Some(other) => return Err(format!("unsupported kty {other:?}")),
        None => return Err("no kty".into()),
    };
    let kid = match k.get("kid") {
        None => None,
        Some(Value::String(x)) => Some(x.clone()),
        Some(_) => return Err("kid is not a string".into()),
    };
    let key = Key { kid, alg: s(k, "alg").map(str::to_string), material };
    // Decode once so garbage material is caught at fetch time, not at login.
    key.decoding_key().map_err(|e| e.to_string())?;
    Ok(key)
}

/// The key material must be well-formed for its type, so a JWKS of garbage
/// keys counts as "no usable keys" (and never replaces a good cache): strict
/// base64url, RSA moduli of 2048–8192 bits with a small odd exponent, EC and
/// Ed25519 coordinates of exactly their curve's length, EC points on their curve.
fn check_material(m: &Material) -> Result<(), String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let dec = |name: &str, v: &str| URL_SAFE_NO_PAD.decode(v).map_err(|_| format!("{name} is not base64url"));
    let exact = |name: &str, v: &str, len: usize| -> Result<(), String> {
        let b = dec(name, v)?;
        if b.len() == len {
            Ok(())
        } else {
            Err(format!("{name} is {} bytes, want {len}", b.len()))
        }
    };
    match m {
        Material::Rsa { n, e } => {
            let n = dec("n", n)?;
            let bits = n.iter().position(|&b| b != 0).map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(format!("RSA modulus of {bits} bits (want 2048 to 8192)"));
            }
            let e = dec("e", e)?;
            let odd = e.last().is_some_and(|b| b & 1 == 1);
            if e.len() > 4 || !odd || e.iter().all(|&b| b == 0) || e == [1] {
                return Err("RSA exponent is not a small odd number".into());
            }
        }
        Material::Ec { crv, x, y } => {
            let len = match crv.as_str() {
                "P-256" => 32,
                "P-384" => 48,
                other => return Err(format!("unsupported curve {other:?}")),
            };
            exact("x", x, len)?;
            exact("y", y, len)?;
            // The point must be on the curve (uncompressed SEC1: 0x04 || x || y).
            let mut point = vec![4u8];
            point.extend(dec("x", x)?);
            point.extend(dec("y", y)?);
            if !crate::crypto::ec_point_valid(crv, &point)? {
                return Err(format!("the {crv} point (x, y) is not on the curve"));
            }
        }
        Material::Okp { crv, x } => {
            if crv != "Ed25519" {
                return Err(format!("unsupported curve {crv:?}"));
            }
            // Its length only, as before (aws-lc took any 32 bytes as a raw
            // Ed25519 key too): a string that is no point never verifies.
            exact("x", x, 32)?;
        }
    }
    Ok(())
}

/// The JWKS cache file written by helperd (atomic rename), read by the module.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheFile {
    /// Format version, [`CACHE_VERSION`].
    pub v: u32,
    /// The issuer's configured URL; [`read_cache`] refuses a file of another issuer.
    pub issuer: String,
    /// Where the keys were fetched from (`jwks_uri` of the config or of discovery).
    pub jwks_uri: String,
    /// Unix seconds.
    pub fetched_at: i64,
    /// When the keys go stale (Unix seconds): helperd refetches then, and the
    /// module stops using them `helperd.jwks_max_stale_secs` later.
    pub expires_at: i64,
    /// The accepted keys as a JWK set (`{"keys":[...]}`), already checked by [`Jwks::from_idp`].
    pub jwks: Value,
}

/// The cache file format's version; [`read_cache`] refuses any other.
pub const CACHE_VERSION: u32 = 1;
/// Cache files larger than this are not read.
pub const MAX_CACHE_BYTES: u64 = 1024 * 1024;

/// `<cache_dir>/jwks/<readable-slug>-<fnv64>.json`: stable, filesystem-safe, collision-resistant.
pub fn cache_path(cache_dir: &Path, issuer: &str) -> PathBuf {
    let slug: String = issuer
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .take(64)
        .collect();
    cache_dir.join("jwks").join(format!("{slug}-{:016x}.json", nss_snapshot::format::fnv64(issuer.as_bytes())))
}

/// Read an issuer's cached JWKS. Errors are reasons for the log.
pub fn read_cache(cache_dir: &Path, issuer: &str) -> Result<(CacheFile, Jwks), String> {
    use std::io::Read as _;
    let path = cache_path(cache_dir, issuer);
    let f = std::fs::File::open(&path).map_err(|e| format!("no cached JWKS at {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_CACHE_BYTES + 1).read_to_end(&mut buf).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_CACHE_BYTES {
        return Err(format!("{} is larger than {MAX_CACHE_BYTES} bytes", path.display()));
    }
    let c: CacheFile = serde_json::from_slice(&buf).map_err(|e| format!("{}: {e}", path.display()))?;
    if c.v != CACHE_VERSION || c.issuer != issuer {
        return Err(format!("{}: wrong version or issuer", path.display()));
    }
    let jwks = Jwks::from_value(&c.jwks).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((c, jwks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn lenient_parse_strict_select() {
        let v = json!({"keys":[
            {"kty":"RSA","kid":"r1","n":N,"e":"AQAB","use":"sig"},
            {"kty":"RSA","kid":"enc","n":N,"e":"AQAB","use":"enc"},
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"XYZ","kid":"odd"},
            {"kty":"RSA","kid":"pinned","n":N,"e":"AQAB","alg":"PS256"}
        ]});
        let j = Jwks::from_value(&v).unwrap();
        assert_eq!(j.keys.len(), 2);
        assert_eq!(j.skipped.len(), 3);
        assert!(j.select(Some("r1"), Alg::RS256).is_ok());
        assert_eq!(j.select(Some("r1"), Alg::RS256).unwrap().len(), 1);
        assert_eq!(j.select(Some("zz"), Alg::RS256).unwrap_err().code(), "unknown-kid");
        assert_eq!(j.select(Some("r1"), Alg::ES256).unwrap_err().code(), "no-usable-key");
        assert_eq!(j.select(Some("pinned"), Alg::RS256).unwrap_err().code(), "no-usable-key");
        assert!(j.select(Some("pinned"), Alg::PS256).is_ok());
        assert_eq!(j.select(None, Alg::RS256).unwrap()[0].kid.as_deref(), Some("r1"));
        assert_eq!(j.select(None, Alg::ES256).unwrap_err().code(), "no-usable-key");
        assert!(Jwks::from_value(&json!({"nokeys":1})).is_err());
    }

    #[test]
    fn garbage_key_material_is_skipped_when_fetched() {
        let ec = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"; // 32 bytes
        let keys: Value = serde_json::from_str(include_str!("../tests/fixtures/test-keys.json")).unwrap();
        let (gx, gy) = (keys["ec"]["jwk"]["x"].as_str().unwrap(), keys["ec"]["jwk"]["y"].as_str().unwrap());
        let v = json!({"keys":[
            {"kty":"RSA","kid":"bad-b64","n":"!!!","e":"AQAB"},
            {"kty":"RSA","kid":"short","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4","e":"AQAB"},
            {"kty":"RSA","kid":"e-even","n":N,"e":"AQAA"},
            {"kty":"RSA","kid":"e-one","n":N,"e":"AQ"},
            {"kty":"EC","kid":"ec-short","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"EC","kid":"ec-curve","crv":"P-521","x":ec,"y":ec},
            {"kty":"OKP","kid":"ed-short","crv":"Ed25519","x":"AAAA"},
            {"kty":"OKP","kid":"x25519","crv":"X25519","x":ec},
            {"kty":"EC","kid":"ec-off-curve","crv":"P-256","x":ec,"y":ec},
            {"kty":"EC","kid":"ec-ok","crv":"P-256","x":gx,"y":gy},
            {"kty":"RSA","kid":"rsa-ok","n":N,"e":"AQAB"}
        ]});
        let j = Jwks::from_idp(&v).unwrap();
        let kids: Vec<_> = j.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["ec-ok", "rsa-ok"], "skipped: {:?}", j.skipped);
        assert_eq!(j.skipped.len(), 9);
        assert!(j.skipped.iter().any(|w| w.contains("not on the curve")), "{:?}", j.skipped);
    }

    #[test]
    fn cache_path_is_safe_and_distinct() {
        let a = cache_path(Path::new("/c"), "https://idp/../../etc");
        assert_eq!(a.parent(), Some(Path::new("/c/jwks")), "{a:?}");
        assert_ne!(cache_path(Path::new("/c"), "https://a/b"), cache_path(Path::new("/c"), "https://a_b"));
    }
}

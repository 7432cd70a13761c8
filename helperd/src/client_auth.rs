//! How helperd's device and CIBA clients authenticate at the IdP: not at all
//! (a public device client), with a secret (`client_secret_post`), or with a
//! signed assertion (`private_key_jwt`, RFC 7523 / OpenID Connect Core §9).
//! Secrets and keys come from root-only files read at each flow (a rotated
//! one needs no restart) and never reach a log or the module.

use oidc_core::{Config, Secret};
use serde::Serialize;

/// Which of an issuer's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Device,
    Ciba,
}

/// A client's authentication, loaded for one flow.
pub enum ClientAuth {
    Public,
    Secret(Secret),
    Key { key: jsonwebtoken::EncodingKey, alg: jsonwebtoken::Algorithm, kid: Option<String> },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::Public => "ClientAuth::Public",
            ClientAuth::Secret(_) => "ClientAuth::Secret(<redacted>)",
            ClientAuth::Key { .. } => "ClientAuth::Key(<redacted>)",
        })
    }
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

/// Longest a client assertion lives (the IdP keeps its `jti` until then).
const ASSERTION_TTL: i64 = 60;

impl ClientAuth {
    /// Load `which` client's authentication of `issuer` from its files.
    pub fn load(cfg: &Config, issuer: &str, which: Client) -> Result<ClientAuth, String> {
        let Some(i) = cfg.issuer(issuer) else { return Err(format!("issuer not configured: {issuer}")) };
        let (secret, key) = match which {
            Client::Device => (&i.device_client_secret_file, &i.device_client_key_file),
            Client::Ciba => (&i.ciba_client_secret_file, &i.ciba_client_key_file),
        };
        if let Some(f) = secret {
            let text = read(f)?;
            let s = Secret::new(text.expose().trim().to_string());
            if s.expose().is_empty() {
                return Err(format!("{}: empty", f.display()));
            }
            return Ok(ClientAuth::Secret(s));
        }
        let Some(f) = key else { return Ok(ClientAuth::Public) };
        let pem = read(f)?;
        let pem = pem.expose().as_bytes();
        use jsonwebtoken::{Algorithm, EncodingKey};
        let (key, alg) = if let Ok(k) = EncodingKey::from_ec_pem(pem) {
            (k, Algorithm::ES256)
        } else if let Ok(k) = EncodingKey::from_ed_pem(pem) {
            (k, Algorithm::EdDSA)
        } else if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
            (k, Algorithm::RS256)
        } else {
            return Err(format!("{}: not a PEM private key (RSA, P-256 or Ed25519)", f.display()));
        };
        let auth = ClientAuth::Key { key, alg, kid: i.client_key_id.clone() };
        // A key of another size or curve (P-384 as "ES256") loads but cannot sign: say so now.
        auth.fields("probe", "probe", 0)
            .map_err(|e| format!("{}: cannot sign {alg:?} with this key (RSA, P-256 or Ed25519): {e}", f.display()))?;
        Ok(auth)
    }

    /// The form fields that authenticate `client_id` in a request to
    /// `endpoint` at unix time `now` (an assertion is made for each request:
    /// its `jti` is used once).
    pub fn fields(&self, client_id: &str, endpoint: &str, now: i64) -> Result<Vec<(&'static str, Secret)>, String> {
        match self {
            ClientAuth::Public => Ok(vec![]),
            ClientAuth::Secret(s) => Ok(vec![("client_secret", s.clone())]),
            ClientAuth::Key { key, alg, kid } => {
                let jti = crate::ids::random_id().ok_or("no randomness for a client assertion")?;
                let claims = Assertion {
                    iss: client_id,
                    sub: client_id,
                    aud: endpoint,
                    jti,
                    iat: now,
                    exp: now + ASSERTION_TTL,
                };
                let header = jsonwebtoken::Header { alg: *alg, kid: kid.clone(), ..Default::default() };
                let jwt =
                    oidc_core::crypto::encode(&header, &claims, key).map_err(|e| format!("client assertion: {e}"))?;
                Ok(vec![
                    (
                        "client_assertion_type",
                        Secret::new("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
                    ),
                    ("client_assertion", Secret::new(jwt)),
                ])
            }
        }
    }
}

fn read(f: &std::path::Path) -> Result<Secret, String> {
    let mut b = nss_snapshot::format::read_private_file(f, 16 * 1024)?;
    let text = String::from_utf8(std::mem::take(&mut b)).map_err(|_| format!("{}: not UTF-8", f.display()))?;
    Ok(Secret::new(text))
}

/// `form` plus the authentication fields, as the transport takes them.
pub fn with_auth<'a>(form: &[(&'a str, &'a str)], auth: &'a [(&'static str, Secret)]) -> Vec<(&'a str, &'a str)> {
    let mut v = form.to_vec();
    v.extend(auth.iter().map(|(k, s)| (*k, s.expose())));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn cfg(extra: &str) -> Config {
        let text = format!(
            "version = 1\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"cli\"]\n\
             device_client_id = \"cli\"\n{extra}"
        );
        Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
    }

    fn private(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
        let f = dir.join(name);
        std::fs::write(&f, body).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        f
    }

    /// private_key_jwt: an ES256 assertion per request, `iss` = `sub` = the
    /// client, `aud` = the endpoint, a fresh `jti` each time, 60 s of life,
    /// verifiable with the client's public key; `Debug` shows no key.
    #[test]
    fn a_key_client_signs_a_fresh_assertion_for_each_request() {
        let dir = crate::testing::temp_dir("client-key");
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .output()
            .unwrap();
        let pem = String::from_utf8(out.stdout).unwrap();
        let f = private(&dir, "client.pem", &pem);
        let c = cfg(&format!("device_client_key_file = \"{}\"\nclient_key_id = \"k1\"\n", f.display()));
        let auth = ClientAuth::load(&c, "https://idp.test", Client::Device).unwrap();
        assert_eq!(format!("{auth:?}"), "ClientAuth::Key(<redacted>)");
        let a = auth.fields("cli", "https://idp.test/token", 1_800_000_000).unwrap();
        let b = auth.fields("cli", "https://idp.test/token", 1_800_000_000).unwrap();
        assert_eq!(a[0].1.expose(), "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        assert_eq!(a[1].0, "client_assertion");
        let part = |jwt: &str, n: usize| -> serde_json::Value {
            let p = jwt.split('.').nth(n).unwrap();
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let (ha, ca, cb) = (part(a[1].1.expose(), 0), part(a[1].1.expose(), 1), part(b[1].1.expose(), 1));
        assert_eq!((ha["alg"].as_str(), ha["kid"].as_str()), (Some("ES256"), Some("k1")));
        assert_eq!((ca["iss"].as_str(), ca["sub"].as_str()), (Some("cli"), Some("cli")));
        assert_eq!(ca["aud"], "https://idp.test/token");
        assert_eq!(ca["exp"].as_i64().unwrap() - ca["iat"].as_i64().unwrap(), 60);
        assert_ne!(ca["jti"], cb["jti"], "a jti is used once");
        // The signature verifies with the public half.
        let public =
            std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&f).output().unwrap().stdout;
        oidc_core::crypto::install();
        let key = jsonwebtoken::DecodingKey::from_ec_pem(&public).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["https://idp.test/token"]);
        v.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(a[1].1.expose(), &key, &v).unwrap();
    }

    #[test]
    fn secrets_and_keys_come_only_from_private_files() {
        let dir = crate::testing::temp_dir("client-secret");
        let s = private(&dir, "s", "  the-secret \n");
        let c = cfg(&format!("device_client_secret_file = \"{}\"\n", s.display()));
        let auth = ClientAuth::load(&c, "https://idp.test", Client::Device).unwrap();
        let f = auth.fields("cli", "https://idp.test/token", 0).unwrap();
        assert_eq!((f[0].0, f[0].1.expose()), ("client_secret", "the-secret"));
        assert_eq!(format!("{auth:?}"), "ClientAuth::Secret(<redacted>)");
        std::fs::set_permissions(&s, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        assert!(ClientAuth::load(&c, "https://idp.test", Client::Device).unwrap_err().contains("chmod 600"));
        let k = private(&dir, "k", "not a key");
        let c = cfg(&format!("device_client_key_file = \"{}\"\n", k.display()));
        assert!(ClientAuth::load(&c, "https://idp.test", Client::Device)
            .unwrap_err()
            .contains("not a PEM private key"));
        assert!(matches!(ClientAuth::load(&cfg(""), "https://idp.test", Client::Device), Ok(ClientAuth::Public)));
        // RSA and Ed25519 keys sign too; a P-384 key is refused at load, not at the first login.
        for (alg, args, want) in [
            ("RS256", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..], Ok("RS256")),
            ("EdDSA", &["-algorithm", "ED25519"][..], Ok("EdDSA")),
            ("P-384", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..], Err("cannot sign")),
        ] {
            let pem = std::process::Command::new("openssl").arg("genpkey").args(args).output().unwrap().stdout;
            let k = private(&dir, alg, &String::from_utf8(pem).unwrap());
            let c = cfg(&format!("device_client_key_file = \"{}\"\n", k.display()));
            match (ClientAuth::load(&c, "https://idp.test", Client::Device), want) {
                (Ok(ClientAuth::Key { alg: a, .. }), Ok(w)) => assert_eq!(format!("{a:?}"), w),
                (Err(e), Err(w)) => assert!(e.contains(w), "{alg}: {e}"),
                (other, _) => panic!("{alg}: {other:?}"),
            }
        }
    }
}

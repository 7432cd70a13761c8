//! Doctor: an issuer's device-code and push (CIBA) clients — the IdP offers
//! the flow (its endpoint in discovery, poll mode, the grant and the client
//! authentication method where it lists them) and the client's secret or key
//! loads from its root-only file.

use crate::client_auth::{Client, ClientAuth};
use crate::discovery::Discovered;
use oidc_core::Issuer;
use serde_json::Value;

type Outcome = Result<String, (String, String)>;

/// Does discovery's list `key` (if the IdP publishes it) include `want`?
fn lists(d: &Discovered, key: &str, want: &str) -> Result<(), String> {
    match d.doc.get(key).and_then(Value::as_array) {
        Some(l) if !l.iter().any(|v| v.as_str() == Some(want)) => Err(format!("the IdP's {key} lacks {want:?}")),
        _ => Ok(()),
    }
}

fn method(auth: &ClientAuth) -> &'static str {
    match auth {
        ClientAuth::Public => "none",
        ClientAuth::Secret(_) => "client_secret_post",
        ClientAuth::Key { .. } => "private_key_jwt",
    }
}

/// The checks of `iss`'s clients: (check name, outcome) for each configured one.
pub fn checks(d: &Discovered, cfg: &oidc_core::Config, iss: &Issuer) -> Vec<(String, Outcome)> {
    let mut out = vec![];
    let flows = [
        (Client::Device, iss.device_client_id.as_ref(), "device_authorization_endpoint", None),
        (Client::Ciba, iss.ciba_client_id.as_ref(), "backchannel_authentication_endpoint", Some("poll")),
    ];
    for (which, id, endpoint, mode) in flows {
        let Some(id) = id else { continue };
        let (label, grant) = match which {
            Client::Device => ("device client", "urn:ietf:params:oauth:grant-type:device_code"),
            Client::Ciba => ("push (CIBA) client", "urn:openid:params:grant-type:ciba"),
        };
        let name = format!("issuer {} {label} {id}", iss.url);
        let fix_idp = "enable the flow for this client at the IdP, or remove the client from this issuer";
        let r = (|| -> Outcome {
            d.endpoint(endpoint).map_err(|e| (e, fix_idp.to_string()))?;
            lists(d, "grant_types_supported", grant).map_err(|e| (e, fix_idp.to_string()))?;
            if let Some(m) = mode {
                lists(d, "backchannel_token_delivery_modes_supported", m).map_err(|e| (e, fix_idp.to_string()))?;
            }
            let auth = ClientAuth::load(cfg, &iss.url, which).map_err(|e| {
                (e, "the client's secret or key file: a regular file, owner root, mode 0600, non-empty".to_string())
            })?;
            if !matches!(auth, ClientAuth::Public) {
                lists(d, "token_endpoint_auth_methods_supported", method(&auth))
                    .map_err(|e| (e, "use a client authentication the IdP supports".to_string()))?;
            }
            Ok(format!("{endpoint} offered; client authentication {}", method(&auth)))
        })();
        out.push((name, r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(extra: &str) -> oidc_core::Config {
        let text = format!("version = 1\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"d\", \"p\"]\n{extra}");
        oidc_core::Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn clients_the_idp_does_not_offer_or_that_cannot_authenticate_fail() {
        let dir = crate::testing::temp_dir("doctor-clients");
        let secret = dir.join("s");
        std::fs::write(&secret, "x").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let c = cfg(&format!(
            "device_client_id = \"d\"\nciba_client_id = \"p\"\nciba_client_secret_file = \"{}\"\n",
            secret.display()
        ));
        let good = Discovered {
            doc: json!({"device_authorization_endpoint": "https://idp.test/device",
                        "backchannel_authentication_endpoint": "https://idp.test/bc",
                        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
                        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"]}),
            date: None,
        };
        let r = checks(&good, &c, &c.issuers[0]);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|(_, o)| o.is_ok()), "{r:?}");
        assert!(r[1].1.as_ref().unwrap().contains("client_secret_post"), "{r:?}");

        let bad = Discovered {
            doc: json!({"device_authorization_endpoint": "https://idp.test/device",
                        "backchannel_authentication_endpoint": "https://idp.test/bc",
                        "backchannel_token_delivery_modes_supported": ["push"]}),
            date: None,
        };
        let r = checks(&bad, &c, &c.issuers[0]);
        assert!(r[1].1.as_ref().unwrap_err().0.contains("\"poll\""), "{r:?}");
        let none = Discovered { doc: json!({}), date: None };
        let r = checks(&none, &c, &c.issuers[0]);
        assert!(r[0].1.as_ref().unwrap_err().0.contains("device_authorization_endpoint"), "{r:?}");
        assert!(r[1].1.as_ref().unwrap_err().0.contains("backchannel_authentication_endpoint"), "{r:?}");
        // A secret file others may read (after the config was loaded).
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let r = checks(&good, &c, &c.issuers[0]);
        assert!(r[1].1.as_ref().unwrap_err().0.contains("chmod 600"), "{r:?}");
    }
}

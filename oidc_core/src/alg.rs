//! JWS algorithms we know, their key families, and the mapping to jsonwebtoken.

use jsonwebtoken::Algorithm;

/// A JWS `alg` this crate verifies (RFC 7518, RFC 8037); `none` is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// HMAC with SHA-256 (shared secret: `hmac_secret_file`).
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA; only Ed25519 keys.
    EdDSA,
}

/// The kind of key an algorithm needs. A JWK of another kind is never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A shared secret (not a JWK: `hmac_secret_file`).
    Hmac,
    /// An RSA key (`kty: RSA`).
    Rsa,
    /// EC with this curve name.
    Ec(&'static str),
    /// OKP with this curve name.
    Okp(&'static str),
}

/// Every [`Alg`], in declaration order.
pub const ALL: [Alg; 12] = [
    Alg::HS256,
    Alg::HS384,
    Alg::HS512,
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
    Alg::ES256,
    Alg::ES384,
    Alg::EdDSA,
];

impl Alg {
    /// Exact, case-sensitive (RFC 7518 names). `none` is not an algorithm here.
    pub fn parse(s: &str) -> Option<Alg> {
        ALL.into_iter().find(|a| a.name() == s)
    }

    /// The RFC 7518 name, as in the `alg` header and the config.
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// An HS* algorithm: verified with the issuer's shared secret, not its JWKS.
    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }

    /// The kind of key (and curve) this algorithm needs.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Alg::HS256 | Alg::HS384 | Alg::HS512 => KeyKind::Hmac,
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => KeyKind::Rsa,
            Alg::ES256 => KeyKind::Ec("P-256"),
            Alg::ES384 => KeyKind::Ec("P-384"),
            Alg::EdDSA => KeyKind::Okp("Ed25519"),
        }
    }

    /// The same algorithm in jsonwebtoken's terms.
    pub fn to_jwt(self) -> Algorithm {
        match self {
            Alg::HS256 => Algorithm::HS256,
            Alg::HS384 => Algorithm::HS384,
            Alg::HS512 => Algorithm::HS512,
            Alg::RS256 => Algorithm::RS256,
            Alg::RS384 => Algorithm::RS384,
            Alg::RS512 => Algorithm::RS512,
            Alg::PS256 => Algorithm::PS256,
            Alg::PS384 => Algorithm::PS384,
            Alg::PS512 => Algorithm::PS512,
            Alg::ES256 => Algorithm::ES256,
            Alg::ES384 => Algorithm::ES384,
            Alg::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_unknown() {
        for a in ALL {
            assert_eq!(Alg::parse(a.name()), Some(a));
        }
        for bad in ["none", "None", "NONE", "rs256", "RS256 ", ""] {
            assert_eq!(Alg::parse(bad), None, "{bad}");
        }
    }
}

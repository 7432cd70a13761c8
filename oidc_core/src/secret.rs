//! A secret string (a token, a client secret) that is wiped on drop and never
//! printed: `Debug` and `Display` show `[redacted]`.

use zeroize::Zeroizing;

/// A string wiped on drop, shown as `[redacted]` by `Debug` and `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Take ownership of `s`; it is wiped when the `Secret` drops.
    pub fn new(s: String) -> Self {
        Secret(Zeroizing::new(s))
    }

    /// The secret itself; call only where it is consumed (parsing, signing input).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Is it the empty string?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// A secret crosses the helperd socket (root-only, local) as a plain JSON string.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("eyJhbGciOi.secret.sig".into());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "eyJhbGciOi.secret.sig");
    }
}

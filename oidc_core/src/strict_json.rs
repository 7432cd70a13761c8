//! A JSON object that refuses duplicate member names.
//!
//! RFC 7515 §5.2 lets a JWS parser either reject duplicate header/claim names or
//! take the last one; implementations disagree, which is how confusion attacks
//! start. We reject.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object parsed with duplicate member names refused.
#[derive(Debug, Clone, Default)]
pub struct StrictObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StrictObject, A::Error> {
                let mut out = Map::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate member {k:?}")));
                    }
                    out.insert(k, v);
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl StrictObject {
    /// Parse bytes as one JSON object; `Err` on a duplicate member or anything else not an object.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The member named `k`.
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_refused() {
        assert!(StrictObject::parse(br#"{"a":1,"a":2}"#).is_err());
        assert!(StrictObject::parse(br#"[1]"#).is_err());
        assert!(StrictObject::parse(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(StrictObject::parse(deep.as_bytes()).is_err());
    }
}

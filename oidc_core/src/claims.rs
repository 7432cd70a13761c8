//! Claims by path, claim conditions and name templates (pure).
//!
//! A **claim path** names a claim, nested ones included: `groups`,
//! `realm_access.roles`, `cognito:groups`, `kubernetes.io.serviceaccount.name`.
//! Claim names may themselves hold dots (`kubernetes.io`), so at each level the
//! longest run of dot-separated segments that is a key of the object wins.
//!
//! A **condition** (`[issuer.require]`, `[role_account.require]`) says what a
//! claim must hold: a string (exact, or a glob with `*`), a boolean, an
//! integer, or a list of those (any one of them). When the claim is an array,
//! one element must match. A missing claim never matches.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The value at `path`, if any.
pub fn get<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    let segs: Vec<&str> = path.split('.').collect();
    lookup(claims, &segs)
}

fn lookup<'a>(obj: &'a Map<String, Value>, segs: &[&str]) -> Option<&'a Value> {
    for take in (1..=segs.len()).rev() {
        let key = segs[..take].join(".");
        if let Some(v) = obj.get(&key) {
            if take == segs.len() {
                return Some(v);
            }
            if let Value::Object(inner) = v {
                if let Some(found) = lookup(inner, &segs[take..]) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// One accepted value of a condition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A JSON boolean.
    Bool(bool),
    /// A JSON integer.
    Int(i64),
    /// A string, matching exactly except that `*` matches any run of characters.
    Str(String),
}

/// A condition on one claim: a value or a list of values (any of them).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Cond {
    /// One accepted value.
    One(Scalar),
    /// Any of these values.
    Any(Vec<Scalar>),
}

impl Cond {
    fn options(&self) -> &[Scalar] {
        match self {
            Cond::One(s) => std::slice::from_ref(s),
            Cond::Any(v) => v,
        }
    }

    /// Does the claim value satisfy this condition?
    pub fn matches(&self, v: &Value) -> bool {
        match v {
            Value::Array(items) => items.iter().any(|i| !i.is_array() && self.matches(i)),
            v => self.options().iter().any(|o| scalar_matches(o, v)),
        }
    }

    /// The condition as people read it in a refusal (`"acme"`, `one of [1, 2]`).
    pub fn describe(&self) -> String {
        let one = |s: &Scalar| match s {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
        };
        match self {
            Cond::One(s) => one(s),
            Cond::Any(v) => format!("one of [{}]", v.iter().map(one).collect::<Vec<_>>().join(", ")),
        }
    }
}

fn scalar_matches(o: &Scalar, v: &Value) -> bool {
    match (o, v) {
        (Scalar::Bool(a), Value::Bool(b)) => a == b,
        (Scalar::Int(a), Value::Number(n)) => n.as_i64() == Some(*a),
        (Scalar::Str(p), Value::String(s)) => star_match(p.as_bytes(), s.as_bytes()),
        _ => false,
    }
}

/// `*` matches any run; every other character (`?` too) only itself.
pub(crate) fn star_match(p: &[u8], s: &[u8]) -> bool {
    nss_snapshot::format::wildcard(p, s, false)
}

impl Cond {
    /// Exact values only (no `*`): what binds a tenant.
    pub fn is_exact(&self) -> bool {
        self.options().iter().all(|o| !matches!(o, Scalar::Str(s) if s.contains('*')))
    }
}

/// Conditions keyed by claim path; all must hold.
pub type Conditions = BTreeMap<String, Cond>;

/// `Err(why)` names the first condition that fails (for the log).
pub(crate) fn check(conds: &Conditions, claims: &Map<String, Value>) -> Result<(), String> {
    for (path, cond) in conds {
        match get(claims, path) {
            None => return Err(format!("claim {path} is missing (need {})", cond.describe())),
            Some(v) if !cond.matches(v) => {
                // Plain text, bounded: the Rejection escapes when it is displayed.
                let mut got: String = v.to_string().chars().take(120).collect();
                if got.len() < v.to_string().len() {
                    got.push('…');
                }
                return Err(format!("claim {path} is {got}, need {}", cond.describe()));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Validate conditions in config: paths non-empty, lists non-empty, no nested lists.
pub(crate) fn validate(conds: &Conditions) -> Result<(), String> {
    for (path, c) in conds {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!("claim path {path:?} is empty or has an empty segment"));
        }
        if let Cond::Any(v) = c {
            if v.is_empty() {
                return Err(format!("{path}: an empty list never matches"));
            }
        }
    }
    Ok(())
}

/// A claim used as a string: strings as they are, integers in decimal.
pub(crate) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Render `gh-{repository_owner}`: each `{path}` is replaced by that claim as
/// text. A missing or non-text claim, or an unbalanced brace, is an error.
pub(crate) fn render(template: &str, claims: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("template {template:?}: unbalanced {{"))?;
        let path = &after[..close];
        let v = get(claims, path).ok_or_else(|| format!("claim {path} (in the name template) is missing"))?;
        out.push_str(&as_text(v).ok_or_else(|| format!("claim {path} (in the name template) is not a string"))?);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("template {template:?}: unbalanced }}"));
    }
    out.push_str(rest);
    Ok(out)
}

/// The claim paths a template uses.
pub(crate) fn template_paths(template: &str) -> Vec<&str> {
    template.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(p, _)| p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn paths_reach_nested_and_dotted_claims() {
        let c = obj(json!({
            "realm_access": {"roles": ["ops"]},
            "cognito:groups": ["a"],
            "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "deployer"}},
            "a.b": 1, "a": {"b": 2}
        }));
        assert_eq!(get(&c, "realm_access.roles"), Some(&json!(["ops"])));
        assert_eq!(get(&c, "cognito:groups"), Some(&json!(["a"])));
        assert_eq!(get(&c, "kubernetes.io.namespace"), Some(&json!("ci")));
        assert_eq!(get(&c, "kubernetes.io.serviceaccount.name"), Some(&json!("deployer")));
        assert_eq!(get(&c, "a.b"), Some(&json!(1)), "the longest key wins");
        assert_eq!(get(&c, "kubernetes"), None);
        assert_eq!(get(&c, ""), None);
    }

    #[test]
    fn conditions() {
        let c = obj(json!({"repository": "acme/infra", "ref": "refs/heads/main", "email_verified": false,
            "amr": ["pwd", "mfa"], "n": 7, "tid": "t1"}));
        let conds: Conditions = toml::from_str(
            "repository = \"acme/*\"\nref = [\"refs/heads/main\", \"refs/tags/v*\"]\namr = \"mfa\"\nn = 7",
        )
        .unwrap();
        assert!(check(&conds, &c).is_ok());
        let bad: Conditions = toml::from_str("email_verified = true").unwrap();
        assert!(check(&bad, &c).unwrap_err().contains("email_verified is false"));
        let missing: Conditions = toml::from_str("hd = \"example.com\"").unwrap();
        assert!(check(&missing, &c).unwrap_err().contains("missing"));
        let strict: Conditions = toml::from_str("repository = \"acme/infra2\"").unwrap();
        assert!(check(&strict, &c).is_err());
        let ty: Conditions = toml::from_str("n = \"7\"").unwrap();
        assert!(check(&ty, &c).is_err(), "a string never matches a number");
        let q: Conditions = toml::from_str("repository = \"acme?infra\"").unwrap();
        assert!(check(&q, &c).is_err(), "? is not a wildcard");
        assert!(star_match(b"a*c", b"abbc") && !star_match(b"a*c", b"abbd") && star_match(b"*", b""));
    }

    #[test]
    fn templates() {
        let c = obj(json!({"repository_owner": "acme", "id": 42, "o": {"x": "y"}}));
        assert_eq!(render("gh-{repository_owner}", &c).unwrap(), "gh-acme");
        assert_eq!(render("u{id}", &c).unwrap(), "u42");
        assert!(render("{o}", &c).is_err());
        assert!(render("{missing}", &c).is_err());
        assert!(render("a{b", &c).is_err());
        assert!(render("a}b", &c).is_err());
        assert_eq!(template_paths("gh-{a}-{b.c}"), vec!["a", "b.c"]);
    }
}

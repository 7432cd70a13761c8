//! docs/configuration.md is the one configuration reference: every key the
//! code reads is documented there, and every default it states is the code's.
//! The code side comes from the parsed config's `Debug` form, so a new field
//! or a changed default fails here until the docs say the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use oidc_core::Config;
use std::collections::BTreeMap;

const DOC: &str = include_str!("../../docs/configuration.md");

/// Keys whose documented default is prose, with why.
const PROSE: &[&str] = &[
    "helperd.root_socket", // `helperd-root.sock` beside `socket`
    "aws.sts_endpoint",    // depends on aws.region
    "locks.s3_endpoint",   // depends on the bucket and aws.region
];

/// Code fields that are not configuration keys.
const NOT_KEYS: &[(&str, &str)] = &[
    ("version", "required, no default"),
    ("issuer.url", "required, no default"),
    ("issuer.audiences", "required, no default"),
    ("accounts.id_hash_key", "the key read from id_key_file at load time, not a key of the file"),
    ("groups", "a top-level [groups] table is refused with a pointer to [issuer.groups]"),
    ("accounts.uid_claim", "refused with a pointer to [[issuer]] uid_claim"),
];

#[derive(Debug)]
enum V {
    Str(String),
    Atom(String),
    List(Vec<V>),
    Map(Vec<(V, V)>),
    Struct(Vec<(String, V)>),
    Call(String, Vec<V>),
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> String {
        self.ws();
        let st = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || b"_-.+".contains(&self.s[self.i])) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[st..self.i]).into_owned()
    }
    fn value(&mut self) -> V {
        self.ws();
        match self.s[self.i] {
            b'"' => {
                self.i += 1;
                let mut out = String::new();
                while self.s[self.i] != b'"' {
                    if self.s[self.i] == b'\\' {
                        self.i += 1;
                    }
                    out.push(self.s[self.i] as char);
                    self.i += 1;
                }
                self.i += 1;
                V::Str(out)
            }
            b'[' => {
                self.i += 1;
                let mut items = vec![];
                while !self.eat(b']') {
                    items.push(self.value());
                    self.eat(b',');
                }
                V::List(items)
            }
            b'{' => {
                self.i += 1;
                let mut items = vec![];
                while !self.eat(b'}') {
                    let k = self.value();
                    assert!(self.eat(b':'), "map without ':' at {}", self.i);
                    items.push((k, self.value()));
                    self.eat(b',');
                }
                V::Map(items)
            }
            _ => {
                let name = self.ident();
                assert!(!name.is_empty(), "unparsable Debug at {}", self.i);
                if self.eat(b'{') {
                    let mut fields = vec![];
                    while !self.eat(b'}') {
                        let f = self.ident();
                        assert!(self.eat(b':'), "field without ':' at {}", self.i);
                        fields.push((f, self.value()));
                        self.eat(b',');
                    }
                    V::Struct(fields)
                } else if self.eat(b'(') {
                    let mut items = vec![];
                    while !self.eat(b')') {
                        items.push(self.value());
                        self.eat(b',');
                    }
                    V::Call(name, items)
                } else {
                    V::Atom(name)
                }
            }
        }
    }
}

/// A leaf as the docs write it: `5`, `true`, `unset`, `""`, `[]`, `{}`, `/path`, `["A", "B"]`.
fn show(v: &V) -> String {
    match v {
        V::Str(s) => s.clone(),
        V::Atom(a) if a == "None" => "unset".into(),
        V::Atom(a) => a.clone(),
        V::List(l) if l.is_empty() => "[]".into(),
        V::List(l) => format!(
            "[{}]",
            l.iter()
                .map(|x| match x {
                    V::Atom(a) => format!("\"{a}\""),
                    V::Str(s) => format!("\"{s}\""),
                    o => show(o),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        V::Map(m) if m.is_empty() => "{}".into(),
        V::Call(n, a) if n == "Some" && a.len() == 1 => show(&a[0]),
        V::Call(_, a) if a.len() == 1 => show(&a[0]),
        other => format!("{other:?}"),
    }
}

fn flatten(prefix: &str, v: &V, out: &mut BTreeMap<String, String>) {
    match v {
        V::Struct(fields) => {
            for (f, x) in fields {
                let p = if prefix.is_empty() { f.clone() } else { format!("{prefix}.{f}") };
                flatten(&p, x, out);
            }
        }
        // Conditions and similar newtypes: a leaf
        _ => {
            out.insert(prefix.to_string(), show(v));
        }
    }
}

fn code_defaults() -> BTreeMap<String, String> {
    let cfg = Config::parse(
        "version = 1\n[[issuer]]\nurl = \"https://idp.example.com\"\naudiences = [\"host\"]\n",
        std::path::Path::new("reference.toml"),
    )
    .unwrap();
    let mut out = BTreeMap::new();
    for (name, dbg) in [
        ("helperd", format!("{:?}", cfg.helperd)),
        ("pam", format!("{:?}", cfg.pam)),
        ("policy", format!("{:?}", cfg.policy)),
        ("accounts", format!("{:?}", cfg.accounts)),
        ("aws", format!("{:?}", cfg.aws)),
        ("sessions", format!("{:?}", cfg.sessions)),
        ("backchannel_logout", format!("{:?}", cfg.backchannel_logout)),
        ("locks", format!("{:?}", cfg.locks)),
        ("issuer", format!("{:?}", cfg.issuers[0])),
    ] {
        let v = P { s: dbg.as_bytes(), i: 0 }.value();
        flatten(name, &v, &mut out);
    }
    // [[aws.role]], [[locks.ssf]] and [[role_account]] are lists, documented on one row each
    out.retain(|k, _| k != "aws.roles" && k != "aws.role" && k != "locks.ssf");
    out
}

/// (key, documented default) for every row of the reference table.
fn doc_rows() -> Vec<(String, String)> {
    let mut rows = vec![];
    let mut section = String::new();
    for line in DOC.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') && !cells[1].starts_with("[[") {
            continue;
        }
        let (keys, default) = (cells[1], cells[2]);
        if keys.starts_with("`[[aws.role]]")
            || keys.starts_with("`[[role_account]]")
            || keys.starts_with("`[[locks.ssf]]")
        {
            continue; // rule lists: no defaults in code beyond the rule's own
        }
        let keys = keys.replace("`[[issuer]] ", "`issuer.");
        let names: Vec<String> = keys.split(" / ").map(|k| k.trim_matches('`').to_string()).collect();
        let defaults: Vec<String> = if names.len() > 1 {
            default.split(" / ").map(|d| d.trim().trim_matches('`').to_string()).collect()
        } else {
            vec![default.trim_matches('`').to_string()]
        };
        assert_eq!(names.len(), defaults.len(), "row {line:?}: keys and defaults do not pair up");
        let mut parent = String::new();
        for (i, (k, d)) in names.iter().zip(defaults).enumerate() {
            let d = if d == "\"\"" { String::new() } else { d };
            let full = if i > 0 && !parent.is_empty() {
                format!("{parent}.{k}")
            } else if let Some((top, _)) = k.split_once('.').filter(|(t, _)| {
                [
                    "version",
                    "helperd",
                    "pam",
                    "policy",
                    "accounts",
                    "aws",
                    "sessions",
                    "backchannel_logout",
                    "locks",
                    "issuer",
                ]
                .contains(t)
            }) {
                if i == 0 {
                    section = top.to_string();
                }
                k.clone()
            } else if i > 0 || section == "issuer" {
                format!("{section}.{k}")
            } else if k == "version" {
                k.clone()
            } else {
                section = "issuer".into();
                format!("issuer.{k}")
            };
            if i == 0 {
                parent = full.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
            }
            rows.push((full, d));
        }
    }
    rows
}

#[test]
fn every_documented_default_is_the_code_default() {
    let code = code_defaults();
    let rows = doc_rows();
    assert!(rows.len() > 60, "parsed only {} rows of docs/configuration.md", rows.len());
    let mut wrong = vec![];
    for (key, doc) in &rows {
        if doc.starts_with('—') || PROSE.contains(&key.as_str()) {
            continue;
        }
        match code.get(key) {
            None => wrong.push(format!("{key}: documented, but the code has no such key")),
            Some(c) if c != doc => wrong.push(format!("{key}: docs say {doc:?}, code default is {c:?}")),
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "docs/configuration.md disagrees with the code:\n{}", wrong.join("\n"));
}

#[test]
fn every_key_of_the_code_is_documented() {
    let documented: Vec<String> = doc_rows().into_iter().map(|(k, _)| k).collect();
    let code = code_defaults();
    let missing: Vec<&String> =
        code.keys().filter(|k| !documented.contains(k) && !NOT_KEYS.iter().any(|(n, _)| n == k)).collect();
    assert!(missing.is_empty(), "keys the code reads but docs/configuration.md does not list: {missing:?}");
}

#[test]
fn the_example_config_shows_the_real_defaults() {
    // packaging/config.toml: its settings, and its commented `# key = value`
    // lines, are the code's defaults; a commented line whose code default is
    // unset or empty is an example of a value to set.
    let example = include_str!("../../packaging/config.toml");
    Config::parse(example, std::path::Path::new("packaging/config.toml")).unwrap();
    let code = code_defaults();
    let mut section = String::new();
    let (mut wrong, mut checked) = (vec![], 0);
    for line in example.lines() {
        let l = line.trim_start_matches('#').trim();
        if l.starts_with('[') && !l.contains('=') {
            section = l.trim_matches(['[', ']']).to_string();
            continue;
        }
        let Some((k, v)) = l.split_once(" = ") else { continue };
        if k.contains(' ')
            || ![
                "helperd",
                "pam",
                "policy",
                "issuer",
                "issuer.groups",
                "accounts",
                "aws",
                "sessions",
                "backchannel_logout",
                "locks",
            ]
            .contains(&section.as_str())
        {
            continue;
        }
        let key = format!("{section}.{k}");
        if NOT_KEYS.iter().any(|(n, _)| *n == key) {
            continue;
        }
        let Some(c) = code.get(&key) else {
            wrong.push(format!("{key}: not a key of the code"));
            continue;
        };
        let v = v.split(" #").next().unwrap_or(v).trim().trim_matches('"').to_string();
        if line.starts_with('#') && ["unset", "[]", "{}"].contains(&c.as_str()) {
            continue;
        }
        checked += 1;
        if v != *c {
            wrong.push(format!("{key}: example shows {v:?}, code default is {c:?}"));
        }
    }
    assert!(checked > 30, "checked only {checked} lines of packaging/config.toml");
    assert!(wrong.is_empty(), "packaging/config.toml shows defaults that are not the code's:\n{}", wrong.join("\n"));
}

//! The config a test runs helperd and the module with, built from typed parts
//! and rendered as TOML — no string templates edited with `.replace()`.
//! [`Env::new`](crate::Env::new) adds the paths and defaults of its temp dir.

use std::path::{Path, PathBuf};

/// The audiences of the test IdP's clients (tests/idp: RS256, ES256, EdDSA).
pub const TEST_AUDIENCES: [&str; 3] = ["host-login", "host-login-es", "host-login-ed"];

/// A TOML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
    /// An inline table (`{ a = "b" }`).
    Table(Table),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}
impl From<&Path> for Value {
    fn from(p: &Path) -> Value {
        Value::Str(p.display().to_string())
    }
}
impl From<&PathBuf> for Value {
    fn from(p: &PathBuf) -> Value {
        Value::from(p.as_path())
    }
}
impl From<PathBuf> for Value {
    fn from(p: PathBuf) -> Value {
        Value::from(p.as_path())
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}
impl From<u32> for Value {
    fn from(n: u32) -> Value {
        Value::Int(n.into())
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Value {
        Value::Int(n.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<&[&str]> for Value {
    fn from(l: &[&str]) -> Value {
        Value::List(l.iter().map(|s| Value::from(*s)).collect())
    }
}
impl<const N: usize> From<[&str; N]> for Value {
    fn from(l: [&str; N]) -> Value {
        Value::from(&l[..])
    }
}
impl From<Table> for Value {
    fn from(t: Table) -> Value {
        Value::Table(t)
    }
}

impl Value {
    fn render(&self) -> String {
        match self {
            // A JSON string is a TOML basic string.
            Value::Str(s) => serde_json::to_string(s).unwrap(),
            Value::Int(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::List(l) => format!("[{}]", l.iter().map(Value::render).collect::<Vec<_>>().join(", ")),
            Value::Table(t) => {
                let kv: Vec<String> = t.0.iter().map(|(k, v)| format!("{} = {}", key(k), v.render())).collect();
                format!("{{ {} }}", kv.join(", "))
            }
        }
    }
}

fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap()
    }
}

/// The keys of one TOML table, in order; setting a key again replaces its value in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table(Vec<(String, Value)>);

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    pub fn set(mut self, k: &str, v: impl Into<Value>) -> Table {
        self.put(k, v.into());
        self
    }

    pub fn unset(mut self, k: &str) -> Table {
        self.0.retain(|(key, _)| key != k);
        self
    }

    pub fn get(&self, k: &str) -> Option<&Value> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }

    fn put(&mut self, k: &str, v: Value) {
        match self.0.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }

    /// Every key of `other` set on this table.
    fn merge(mut self, other: &Table) -> Table {
        for (k, v) in &other.0 {
            self.put(k, v.clone());
        }
        self
    }

    fn render(&self, header: &str, out: &mut String) {
        if self.0.is_empty() {
            return;
        }
        out.push_str(&format!("{header}\n"));
        for (k, v) in &self.0 {
            out.push_str(&format!("{} = {}\n", key(k), v.render()));
        }
        out.push('\n');
    }
}

/// One `[[issuer]]` with its `[issuer.require]` and `[issuer.groups]` tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Issuer {
    pub keys: Table,
    pub require: Table,
    pub groups: Table,
}

impl Issuer {
    /// An issuer with only its `url`.
    pub fn new(url: &str) -> Issuer {
        Issuer { keys: Table::new().set("url", url), require: Table::new(), groups: Table::new() }
    }

    /// The test IdP's issuer as most tests use it: the test clients' audiences,
    /// `algs` allowed, 5 s leeway.
    pub fn standard(url: &str, algs: &[&str]) -> Issuer {
        Issuer::new(url).set("audiences", TEST_AUDIENCES).set("algorithms", algs).set("leeway_secs", 5)
    }

    pub fn set(mut self, k: &str, v: impl Into<Value>) -> Issuer {
        self.keys = self.keys.set(k, v);
        self
    }

    pub fn unset(mut self, k: &str) -> Issuer {
        self.keys = self.keys.unset(k);
        self
    }

    /// An `[issuer.require]` condition.
    pub fn require(mut self, claim: &str, v: impl Into<Value>) -> Issuer {
        self.require = self.require.set(claim, v);
        self
    }

    /// An `[issuer.groups] map` entry: the IdP group `idp` becomes the host group `host`.
    pub fn map_group(mut self, idp: &str, host: &str) -> Issuer {
        let map = match self.groups.get("map") {
            Some(Value::Table(t)) => t.clone(),
            _ => Table::new(),
        };
        self.groups = self.groups.set("map", map.set(idp, host));
        self
    }

    fn render(&self, out: &mut String) {
        self.keys.render("[[issuer]]", out);
        self.require.render("[issuer.require]", out);
        self.groups.render("[issuer.groups]", out);
    }
}

/// One `[[role_account]]` with its `[role_account.require]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleAccount {
    pub keys: Table,
    pub require: Table,
}

impl RoleAccount {
    pub fn new(name: &str, issuer: &str) -> RoleAccount {
        RoleAccount { keys: Table::new().set("name", name).set("issuer", issuer), require: Table::new() }
    }

    pub fn set(mut self, k: &str, v: impl Into<Value>) -> RoleAccount {
        self.keys = self.keys.set(k, v);
        self
    }

    pub fn require(mut self, claim: &str, v: impl Into<Value>) -> RoleAccount {
        self.require = self.require.set(claim, v);
        self
    }
}

/// A whole config.toml.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub helperd: Table,
    pub pam: Table,
    pub accounts: Table,
    pub policy: Table,
    pub aws: Table,
    pub sessions: Table,
    pub aws_roles: Vec<Table>,
    pub issuers: Vec<Issuer>,
    pub role_accounts: Vec<RoleAccount>,
    /// Text appended as is (for configs that must not parse).
    pub raw: String,
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    pub fn helperd(mut self, k: &str, v: impl Into<Value>) -> Config {
        self.helperd = self.helperd.set(k, v);
        self
    }

    pub fn pam(mut self, k: &str, v: impl Into<Value>) -> Config {
        self.pam = self.pam.set(k, v);
        self
    }

    pub fn accounts(mut self, k: &str, v: impl Into<Value>) -> Config {
        self.accounts = self.accounts.set(k, v);
        self
    }

    pub fn policy(mut self, k: &str, v: impl Into<Value>) -> Config {
        self.policy = self.policy.set(k, v);
        self
    }

    pub fn aws(mut self, k: &str, v: impl Into<Value>) -> Config {
        self.aws = self.aws.set(k, v);
        self
    }

    /// A key of `[sessions]`.
    pub fn sessions(mut self, k: &str, v: impl Into<Value>) -> Config {
        self.sessions = self.sessions.set(k, v);
        self
    }

    /// An `[[aws.role]]`.
    pub fn aws_role(mut self, role: Table) -> Config {
        self.aws_roles.push(role);
        self
    }

    pub fn issuer(mut self, issuer: Issuer) -> Config {
        self.issuers.push(issuer);
        self
    }

    /// Change the `i`th issuer.
    pub fn edit_issuer(mut self, i: usize, f: impl FnOnce(Issuer) -> Issuer) -> Config {
        let old = self.issuers.remove(i);
        self.issuers.insert(i, f(old));
        self
    }

    pub fn role_account(mut self, r: RoleAccount) -> Config {
        self.role_accounts.push(r);
        self
    }

    /// Text appended as is, after every table (e.g. something that is not TOML).
    pub fn raw(mut self, text: &str) -> Config {
        self.raw.push_str(text);
        self
    }

    /// Every key and table of `other` set on this config.
    pub fn merge(mut self, other: &Config) -> Config {
        self.helperd = self.helperd.merge(&other.helperd);
        self.pam = self.pam.merge(&other.pam);
        self.accounts = self.accounts.merge(&other.accounts);
        self.policy = self.policy.merge(&other.policy);
        self.aws = self.aws.merge(&other.aws);
        self.sessions = self.sessions.merge(&other.sessions);
        self.aws_roles.extend(other.aws_roles.iter().cloned());
        self.issuers.extend(other.issuers.iter().cloned());
        self.role_accounts.extend(other.role_accounts.iter().cloned());
        self.raw.push_str(&other.raw);
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::from("version = 1\n\n");
        self.helperd.render("[helperd]", &mut out);
        self.pam.render("[pam]", &mut out);
        self.accounts.render("[accounts]", &mut out);
        self.policy.render("[policy]", &mut out);
        self.aws.render("[aws]", &mut out);
        self.sessions.render("[sessions]", &mut out);
        for r in &self.aws_roles {
            r.render("[[aws.role]]", &mut out);
        }
        for i in &self.issuers {
            i.render(&mut out);
        }
        for r in &self.role_accounts {
            r.keys.render("[[role_account]]", &mut out);
            r.require.render("[role_account.require]", &mut out);
        }
        out.push_str(&self.raw);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_toml_the_templates_wrote() {
        let url = "http://127.0.0.1:8080";
        let cfg = Config::new()
            .helperd("socket", Path::new("/tmp/x/helperd.sock"))
            .helperd("cache_dir", "/tmp/x/cache")
            .helperd("state_dir", "/tmp/x/state")
            .helperd("nss_snapshot", "/tmp/x/nss.snapshot")
            .pam("ipc_timeout_ms", 1500)
            .accounts("pinned_uids", Table::new().set("erin", 1073741825))
            .policy("denied_groups", ["contractors"])
            .issuer(Issuer::standard(url, &["RS256", "ES256"]).map_group("ops-admins", "sudo"))
            .role_account(RoleAccount::new("k8s", url).require("kubernetes.io.namespace", "ci"))
            .pam("ipc_timeout_ms", 20000);
        let text = cfg.render();
        assert_eq!(
            text,
            "version = 1\n\n[helperd]\nsocket = \"/tmp/x/helperd.sock\"\ncache_dir = \"/tmp/x/cache\"\n\
             state_dir = \"/tmp/x/state\"\nnss_snapshot = \"/tmp/x/nss.snapshot\"\n\n[pam]\nipc_timeout_ms = 20000\n\n\
             [accounts]\npinned_uids = { erin = 1073741825 }\n\n[policy]\ndenied_groups = [\"contractors\"]\n\n\
             [[issuer]]\nurl = \"http://127.0.0.1:8080\"\naudiences = [\"host-login\", \"host-login-es\", \"host-login-ed\"]\n\
             algorithms = [\"RS256\", \"ES256\"]\nleeway_secs = 5\n\n[issuer.groups]\nmap = { ops-admins = \"sudo\" }\n\n\
             [[role_account]]\nname = \"k8s\"\nissuer = \"http://127.0.0.1:8080\"\n\n[role_account.require]\n\
             \"kubernetes.io.namespace\" = \"ci\"\n\n"
        );
        // And the product reads it.
        oidc_core::Config::parse(&text, Path::new("config.toml")).unwrap();
    }
}

//! The client's settings: `/etc/pam-oidc/client.toml` (the site's defaults),
//! then `$XDG_CONFIG_HOME/pam-oidc/client.toml` (the user's), then flags;
//! a later one replaces a key an earlier one set.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One client.toml (every key optional).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Only for IdPs that want one from native apps (Google's desktop
    /// clients); such a secret is not confidential.
    pub client_secret: Option<String>,
    pub scopes: Option<String>,
    /// The `prompt` of the authorization request (default: `consent` when
    /// the scopes ask for `offline_access`, as OpenID Connect requires).
    pub prompt: Option<String>,
    /// Extra authorization request parameters (e.g. `access_type = "offline"`).
    pub auth_params: Option<std::collections::BTreeMap<String, String>>,
    /// The audience CI tokens are requested for (GitHub Actions).
    pub audience: Option<String>,
    /// Where tokens come from: auto, login, github, gitlab[:VAR], k8s[:PATH], command:CMD.
    pub source: Option<String>,
    /// "browser" (authorization code + PKCE) or "device".
    pub flow: Option<String>,
    pub login_timeout_secs: Option<u64>,
    pub http_timeout_secs: Option<u64>,
    /// The hosts a token may be given to (ssh's `(user@host)` prompt prefix;
    /// `*` globs, e.g. `*.example.com`). `pam-oidc ssh` also gives one to the
    /// destination on its own command line.
    pub hosts: Option<Vec<String>>,
}

impl File {
    fn merge(self, o: File) -> File {
        File {
            issuer: o.issuer.or(self.issuer),
            client_id: o.client_id.or(self.client_id),
            client_secret: o.client_secret.or(self.client_secret),
            scopes: o.scopes.or(self.scopes),
            prompt: o.prompt.or(self.prompt),
            auth_params: o.auth_params.or(self.auth_params),
            audience: o.audience.or(self.audience),
            source: o.source.or(self.source),
            flow: o.flow.or(self.flow),
            login_timeout_secs: o.login_timeout_secs.or(self.login_timeout_secs),
            http_timeout_secs: o.http_timeout_secs.or(self.http_timeout_secs),
            hosts: o.hosts.or(self.hosts),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<File, String> {
        toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The merged settings a command runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: String,
    pub prompt: Option<String>,
    pub extra_auth_params: Vec<(String, String)>,
    pub audience: Option<String>,
    pub source: String,
    pub device: bool,
    pub login_timeout_secs: u64,
    pub http_timeout_secs: u64,
    pub hosts: Vec<String>,
}

pub const DEFAULT_SCOPES: &str = "openid profile offline_access";
pub const SYSTEM_CONFIG: &str = "/etc/pam-oidc/client.toml";

impl Settings {
    /// `prompt` for the authorization request.
    pub fn prompt(&self) -> Option<String> {
        match &self.prompt {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(p.clone()),
            None => self.scopes.split_whitespace().any(|s| s == "offline_access").then(|| "consent".to_string()),
        }
    }

    #[cfg(test)]
    pub fn for_tests(issuer: &str, client_id: &str) -> Settings {
        Settings::from_file(File { issuer: Some(issuer.into()), client_id: Some(client_id.into()), ..File::default() })
    }

    fn from_file(f: File) -> Settings {
        Settings {
            issuer: f.issuer.unwrap_or_default().trim_end_matches('/').to_string(),
            client_id: f.client_id.unwrap_or_default(),
            client_secret: f.client_secret,
            scopes: f.scopes.unwrap_or_else(|| DEFAULT_SCOPES.to_string()),
            prompt: f.prompt,
            extra_auth_params: f.auth_params.unwrap_or_default().into_iter().collect(),
            audience: f.audience,
            source: f.source.unwrap_or_else(|| "auto".into()),
            device: f.flow.as_deref() == Some("device"),
            login_timeout_secs: f.login_timeout_secs.unwrap_or(300),
            http_timeout_secs: f.http_timeout_secs.unwrap_or(30),
            hosts: f.hosts.unwrap_or_default(),
        }
    }

    /// Settings for a person's login need an issuer and a client.
    pub fn require_login(&self) -> Result<(), String> {
        if self.issuer.is_empty() || self.client_id.is_empty() {
            return Err(format!(
                "no issuer or client_id: pass --issuer and --client-id, or set them in {} or ~/.config/pam-oidc/client.toml",
                SYSTEM_CONFIG
            ));
        }
        Ok(())
    }
}

/// The user's config file.
pub fn user_config() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("pam-oidc/client.toml"))
}

fn read(path: &Path) -> Result<Option<File>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => File::parse(&t, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Load the files (or only `explicit`) and apply `flags` over them.
pub fn load(explicit: Option<&Path>, flags: File) -> Result<Settings, String> {
    let mut f = File::default();
    match explicit {
        Some(p) => f = f.merge(read(p)?.ok_or_else(|| format!("{}: no such file", p.display()))?),
        None => {
            for p in [Some(PathBuf::from(SYSTEM_CONFIG)), user_config()].into_iter().flatten() {
                if let Some(file) = read(&p)? {
                    f = f.merge(file);
                }
            }
        }
    }
    Ok(Settings::from_file(f.merge(flags)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_and_flags_win() {
        let site = File::parse(
            "issuer = \"https://login.example.com/\"\nclient_id = \"site\"\nscopes = \"openid\"\n",
            Path::new("a"),
        )
        .unwrap();
        let user = File::parse("client_id = \"mine\"\nflow = \"device\"\n", Path::new("b")).unwrap();
        let flags = File { audience: Some("pam-oidc".into()), ..File::default() };
        let s = Settings::from_file(site.merge(user).merge(flags));
        assert_eq!(s.issuer, "https://login.example.com");
        assert_eq!((s.client_id.as_str(), s.scopes.as_str()), ("mine", "openid"));
        assert!(s.device);
        assert_eq!(s.audience.as_deref(), Some("pam-oidc"));
        assert_eq!(s.prompt(), None, "no offline_access: no consent prompt");
        assert!(File::parse("isuer = \"x\"", Path::new("c")).is_err(), "unknown keys are errors");
    }

    #[test]
    fn offline_access_asks_for_consent_unless_told() {
        let mut s = Settings::for_tests("https://i", "c");
        assert_eq!(s.prompt().as_deref(), Some("consent"));
        s.prompt = Some(String::new());
        assert_eq!(s.prompt(), None);
        assert!(Settings::for_tests("", "c").require_login().is_err());
    }
}

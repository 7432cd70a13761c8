//! Where a login's token comes from: a person's login (the cache, refreshed),
//! or a CI platform or agent runtime that hands the job a token directly.

use crate::http::Http;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The variable GitLab's `id_tokens:` is expected to name by default.
pub const GITLAB_DEFAULT_VAR: &str = "PAM_OIDC_TOKEN";
/// Where a Kubernetes projected service-account token is expected by default.
pub const K8S_DEFAULT_PATH: &str = "/var/run/secrets/tokens/pam-oidc";

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A person: the cached login, refreshed for each use.
    Login,
    /// GitHub Actions: the runner's token service (`ACTIONS_ID_TOKEN_REQUEST_URL`).
    Github,
    /// GitLab CI: the variable `id_tokens:` names.
    Gitlab(String),
    /// A Kubernetes projected service-account token file.
    K8s(PathBuf),
    /// Any command that prints a token (run with `sh -c`).
    Command(String),
}

impl Source {
    /// `auto`, `login`, `github`, `gitlab[:VAR]`, `k8s[:PATH]`, `command:CMD`.
    /// `auto` is resolved with [`detect`].
    pub fn parse(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Source, String> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let arg = arg.filter(|a| !a.is_empty());
        match (kind, arg) {
            ("auto", None) => Ok(detect(env, &|p| std::path::Path::new(p).exists())),
            ("login", None) => Ok(Source::Login),
            ("github", None) => Ok(Source::Github),
            ("gitlab", v) => {
                let v = v.unwrap_or(GITLAB_DEFAULT_VAR);
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(format!("gitlab:{v}: not a variable name"));
                }
                Ok(Source::Gitlab(v.to_string()))
            }
            ("k8s", p) => Ok(Source::K8s(PathBuf::from(p.unwrap_or(K8S_DEFAULT_PATH)))),
            ("command", Some(c)) => Ok(Source::Command(c.to_string())),
            _ => Err(format!(
                "--from {s}: expected auto, login, github, gitlab[:VARIABLE], k8s[:PATH] or command:COMMAND"
            )),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Source::Login => "login".into(),
            Source::Github => "github".into(),
            Source::Gitlab(v) => format!("gitlab:{v}"),
            Source::K8s(p) => format!("k8s:{}", p.display()),
            Source::Command(_) => "command".into(),
        }
    }

    /// Variables of the caller's environment that ssh/sudo must not inherit:
    /// what could mint a token, or holds one.
    pub fn secret_vars(&self) -> Vec<String> {
        let mut v: Vec<String> =
            ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "OIDC_TOKEN", GITLAB_DEFAULT_VAR]
                .iter()
                .map(|s| s.to_string())
                .collect();
        if let Source::Gitlab(var) = self {
            v.push(var.clone());
        }
        v
    }

    /// A token from a CI platform or agent runtime (not for [`Source::Login`]).
    pub fn fetch(
        &self,
        http: &Http,
        audience: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Zeroizing<String>, String> {
        let t =
            match self {
                Source::Login => return Err("a person's login is not fetched here".into()),
                Source::Github => github(http, audience, env)?,
                Source::Gitlab(var) => Zeroizing::new(env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                    format!("${var} is empty: name it in the job's id_tokens: (with the hosts' aud)")
                })?),
                Source::K8s(path) => Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("the service-account token {}: {e}", path.display()))?,
                ),
                Source::Command(cmd) => command(cmd)?,
            };
        clean_token(&t)
    }
}

/// `auto`: the platform the process runs on, else a person's login.
pub fn detect(env: &dyn Fn(&str) -> Option<String>, exists: &dyn Fn(&str) -> bool) -> Source {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    if env("GITHUB_ACTIONS").as_deref() == Some("true") && set("ACTIONS_ID_TOKEN_REQUEST_URL") {
        return Source::Github;
    }
    if env("GITLAB_CI").as_deref() == Some("true") && set(GITLAB_DEFAULT_VAR) {
        return Source::Gitlab(GITLAB_DEFAULT_VAR.into());
    }
    if set("KUBERNETES_SERVICE_HOST") && exists(K8S_DEFAULT_PATH) {
        return Source::K8s(K8S_DEFAULT_PATH.into());
    }
    Source::Login
}

/// GitHub Actions: GET `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD` with the
/// request token as bearer; the answer is `{"value": "<jwt>"}`.
fn github(
    http: &Http,
    audience: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Zeroizing<String>, String> {
    let url = env("ACTIONS_ID_TOKEN_REQUEST_URL")
        .filter(|v| !v.is_empty())
        .ok_or("ACTIONS_ID_TOKEN_REQUEST_URL is not set: give the job `permissions: id-token: write`")?;
    let bearer = Zeroizing::new(env("ACTIONS_ID_TOKEN_REQUEST_TOKEN").unwrap_or_default());
    let aud = audience.ok_or("GitHub Actions: --audience (or audience in client.toml) names the hosts' audience")?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("audience", aud);
    let full = format!("{url}{sep}{}", q.finish());
    let auth = Zeroizing::new(format!("Bearer {}", bearer.as_str()));
    let (status, v) = http.get_json(&full, &[("authorization", auth.as_str())])?;
    if status != 200 {
        return Err(format!("GitHub Actions token service: HTTP {status}"));
    }
    Ok(Zeroizing::new(v["value"].as_str().ok_or("GitHub Actions token service: no value in the answer")?.to_string()))
}

fn command(cmd: &str) -> Result<Zeroizing<String>, String> {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("token command: {e}"))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(format!("token command failed ({})", out.status));
    }
    Ok(Zeroizing::new(String::from_utf8(stdout.to_vec()).map_err(|_| "token command: output is not UTF-8")?))
}

/// A token as the host wants it: whitespace around it removed, and nothing
/// inside it that a conversation could not carry.
pub fn clean_token(t: &str) -> Result<Zeroizing<String>, String> {
    let t = t.trim();
    if t.is_empty() {
        return Err("the token is empty".into());
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) || t.ends_with('\\') {
        return Err("the token has characters a JWT does not have".into());
    }
    Ok(Zeroizing::new(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn sources_parse() {
        let none = env_of(&[]);
        assert_eq!(Source::parse("login", &none).unwrap(), Source::Login);
        assert_eq!(Source::parse("github", &none).unwrap(), Source::Github);
        assert_eq!(Source::parse("gitlab", &none).unwrap(), Source::Gitlab("PAM_OIDC_TOKEN".into()));
        assert_eq!(Source::parse("gitlab:DEPLOY_TOKEN", &none).unwrap(), Source::Gitlab("DEPLOY_TOKEN".into()));
        assert_eq!(Source::parse("k8s", &none).unwrap(), Source::K8s(K8S_DEFAULT_PATH.into()));
        assert_eq!(Source::parse("k8s:/t/tok", &none).unwrap(), Source::K8s("/t/tok".into()));
        assert_eq!(Source::parse("command:vault read x", &none).unwrap(), Source::Command("vault read x".into()));
        for bad in ["command", "gitlab:A-B", "gitlab:$(x)", "githup", "login:x", ""] {
            assert!(Source::parse(bad, &none).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_detects_the_platform() {
        let no = |_: &str| false;
        let gh = env_of(&[("GITHUB_ACTIONS", "true"), ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://x/?a=1")]);
        assert_eq!(detect(&gh, &no), Source::Github);
        // A workflow without id-token: write has no request URL: not GitHub's token service.
        assert_eq!(detect(&env_of(&[("GITHUB_ACTIONS", "true")]), &no), Source::Login);
        let gl = env_of(&[("GITLAB_CI", "true"), ("PAM_OIDC_TOKEN", "eyJ.x.y")]);
        assert_eq!(detect(&gl, &no), Source::Gitlab("PAM_OIDC_TOKEN".into()));
        let k8s = env_of(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
        assert_eq!(detect(&k8s, &|p| p == K8S_DEFAULT_PATH), Source::K8s(K8S_DEFAULT_PATH.into()));
        assert_eq!(detect(&k8s, &no), Source::Login);
        assert_eq!(detect(&env_of(&[]), &no), Source::Login);
    }

    #[test]
    fn env_and_command_sources_give_clean_tokens() {
        let http = Http::new(std::time::Duration::from_secs(1));
        let gl = env_of(&[("MY_TOKEN", " eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n")]);
        let t = Source::Gitlab("MY_TOKEN".into()).fetch(&http, None, &gl).unwrap();
        assert_eq!(t.as_str(), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
        assert!(Source::Gitlab("NOPE".into()).fetch(&http, None, &gl).is_err());
        let t = Source::Command("printf 'eyJa.b.c\\n'".into()).fetch(&http, None, &gl).unwrap();
        assert_eq!(t.as_str(), "eyJa.b.c");
        assert!(Source::Command("exit 3".into()).fetch(&http, None, &gl).is_err());
        assert!(Source::Command("echo 'a b'".into()).fetch(&http, None, &gl).is_err());
        assert!(Source::Github.fetch(&http, Some("aud"), &gl).is_err(), "no request URL");
        assert!(Source::Gitlab("X".into()).secret_vars().contains(&"X".to_string()));
        // A Kubernetes projected token file (the kubelet rewrites it; read at each login).
        let f = std::env::temp_dir().join(format!("pam-oidc-k8s-token-{}", std::process::id()));
        std::fs::write(&f, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
        assert_eq!(Source::K8s(f.clone()).fetch(&http, None, &gl).unwrap().as_str(), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
        std::fs::remove_file(&f).unwrap();
        let err = Source::K8s(f).fetch(&http, None, &gl).unwrap_err();
        assert!(err.contains("service-account token"), "{err}");
    }
}

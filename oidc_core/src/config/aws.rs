//! `[aws]` and `[[aws.role]]`: short-lived, scoped AWS credentials for each
//! login session, brokered by helperd.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[aws]`: endpoints, deadlines and the role rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aws {
    /// The AWS region for STS.
    pub region: String,
    /// STS endpoint; empty = `https://sts.<region>.amazonaws.com`.
    pub sts_endpoint: String,
    /// EC2 instance metadata (IMDSv2 only).
    pub imds_endpoint: String,
    /// Deadline for getting a session's credentials (the login waits at most this).
    pub timeout_secs: u64,
    /// Credentials are renewed when they expire within this many seconds.
    pub refresh_before_secs: u64,
    /// No credentials are served to a session once the token it logged in
    /// with expired more than this many seconds ago — for every source (STS
    /// refuses an expired web-identity token by itself; an instance role
    /// would go on minting). Credentials already handed out stay valid at AWS
    /// until their own expiry (at most the role's `duration_secs`).
    pub token_grace_secs: u64,
    /// STS attempts on throttling / 5xx (with jittered backoff).
    pub max_attempts: u32,
    /// A login whose groups match no role fails (default: it succeeds without credentials).
    pub require_credentials: bool,
    /// The (non-secret) AWS config file helperd writes; sessions get `AWS_CONFIG_FILE` = this.
    pub config_file: PathBuf,
    /// The command that AWS config runs as `credential_process` (as the session's user).
    pub credential_process: String,
    /// `[[aws.role]]`, in order: the first that matches wins ([`Aws::role_for`]).
    #[serde(rename = "role")]
    pub roles: Vec<Role>,
}

impl Default for Aws {
    fn default() -> Self {
        Aws {
            region: "us-east-1".into(),
            sts_endpoint: String::new(),
            imds_endpoint: "http://169.254.169.254".into(),
            timeout_secs: 10,
            refresh_before_secs: 300,
            token_grace_secs: 0,
            max_attempts: 3,
            require_credentials: false,
            config_file: "/run/pam-oidc/aws-config".into(),
            credential_process: "/usr/sbin/helperd credentials".into(),
            roles: vec![],
        }
    }
}

/// Where a role's credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Instance-role credentials from IMDSv2, then STS AssumeRole.
    Instance,
    /// STS AssumeRoleWithWebIdentity with the user's verified token.
    WebIdentity,
}

/// The first rule whose group the user has decides the session's role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The host group (after mapping) whose members get this role.
    pub group: String,
    /// Only tokens of this issuer (its URL) get this role; unset: any issuer's
    /// host group of that name (host group names are per issuer already).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The role to assume (`arn:aws:iam::…:role/…`).
    pub role_arn: String,
    /// How helperd gets the credentials.
    pub source: Source,
    /// Lifetime of the credentials in seconds (900..=43200; default 3600).
    #[serde(default = "default_duration")]
    pub duration_secs: u64,
    /// Scope-down session policy (JSON), AssumeRole only.
    #[serde(default)]
    pub policy: Option<String>,
    /// Session tag key → claim name (AssumeRole only).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// If credentials cannot be obtained, the login fails.
    #[serde(default)]
    pub required: bool,
}

fn default_duration() -> u64 {
    3600
}

impl Aws {
    /// The STS endpoint: `sts_endpoint`, else the region's.
    pub fn sts(&self) -> String {
        if self.sts_endpoint.is_empty() {
            format!("https://sts.{}.amazonaws.com", self.region)
        } else {
            self.sts_endpoint.clone()
        }
    }

    /// The first role rule whose host group the session has (and whose issuer,
    /// if it names one, is the session's).
    pub fn role_for(&self, groups: &[String], issuer: &str) -> Option<&Role> {
        self.roles.iter().find(|r| groups.contains(&r.group) && r.issuer.as_deref().is_none_or(|i| i == issuer))
    }
}

pub(super) fn validate(a: &Aws, issuers: &[super::Issuer]) -> Result<(), (String, String)> {
    let err = |k: &str, m: String| Err((k.to_string(), m));
    if a.region.is_empty() || !a.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return err("aws.region", format!("{:?} is not a region name", a.region));
    }
    if a.timeout_secs == 0 || a.timeout_secs > 120 || a.max_attempts == 0 || a.max_attempts > 10 {
        return err("aws.timeout_secs", "need 1..=120 s and 1..=10 attempts".into());
    }
    for (i, r) in a.roles.iter().enumerate() {
        let k = |f: &str| format!("aws.role[{i}].{f}");
        if let Some(i) = &r.issuer {
            if !issuers.iter().any(|x| x.url == *i) {
                return err(&k("issuer"), format!("{i} is not a configured [[issuer]] url"));
            }
        }
        if !r.role_arn.starts_with("arn:aws") || r.role_arn.split(':').count() < 6 {
            return err(&k("role_arn"), format!("{:?} is not a role ARN", r.role_arn));
        }
        if !(900..=43200).contains(&r.duration_secs) {
            return err(&k("duration_secs"), "must be 900..=43200 (STS limits)".into());
        }
        if r.source == Source::WebIdentity && (r.policy.is_some() || !r.tags.is_empty()) {
            return err(&k("source"), "policy and tags are only sent with source = \"instance\" (AssumeRole)".into());
        }
        if r.tags.len() > 50 {
            return err(&k("tags"), "at most 50 session tags".into());
        }
    }
    Ok(())
}

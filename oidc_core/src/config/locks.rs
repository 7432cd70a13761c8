//! `[locks]`: revocation pulled to the host — a fleet-wide lock list helperd
//! polls from S3 with the instance role, and RFC 8936 Security Event Token
//! polling (`[[locks.ssf]]`) from IdPs that offer Shared Signals.

use std::path::PathBuf;

use serde::Deserialize;

/// Largest `max_list_bytes` accepted.
pub const MAX_LIST_BYTES_CEILING: u64 = 16 * 1024 * 1024;

/// `[locks]`: where the fleet's lock list lives and how it is polled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Locks {
    /// `s3://bucket/key` of the fleet lock list; unset: no fleet list (and any
    /// fleet locks left in `locks.json` are lifted at start).
    pub fleet_list: Option<String>,
    /// S3 endpoint; empty = `https://s3.<aws.region>.amazonaws.com`
    /// (virtual-hosted); set = path-style requests to it (moto, a VPC endpoint).
    pub s3_endpoint: String,
    /// Seconds between polls (a 304 costs one small request).
    pub poll_secs: u64,
    /// Deadline for one fetch (IMDS and S3).
    pub fetch_timeout_secs: u64,
    /// A list larger than this is refused (the last good list stays in force).
    pub max_list_bytes: u64,
    /// A list with more entries than this is refused.
    pub max_entries: usize,
    /// While the list cannot be fetched, a warning is logged this often, and
    /// `helperd doctor` fails once the last good fetch is older than this.
    pub stale_warn_secs: u64,
    /// `[[locks.ssf]]`: RFC 8936 poll-based SET delivery, one per transmitter.
    pub ssf: Vec<Ssf>,
}

impl Default for Locks {
    fn default() -> Self {
        Locks {
            fleet_list: None,
            s3_endpoint: String::new(),
            poll_secs: 60,
            fetch_timeout_secs: 10,
            max_list_bytes: 1024 * 1024,
            max_entries: 10_000,
            stale_warn_secs: 3600,
            ssf: vec![],
        }
    }
}

/// One Shared Signals transmitter helperd polls (RFC 8936).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssf {
    /// The `[[issuer]]` (its URL) whose keys sign the SETs and whose
    /// identities they name; the SETs' `iss` must be it (or an alias).
    pub issuer: String,
    /// The stream's poll endpoint (https; http on loopback).
    pub poll_url: String,
    /// The SETs' required `aud` (the receiver's audience of the stream).
    pub audience: String,
    /// The bearer token for the poll endpoint: root-owned, mode 0600
    /// (helperd refuses to start otherwise; the module never reads it).
    pub token_file: PathBuf,
    /// Seconds between polls.
    #[serde(default = "default_ssf_poll")]
    pub poll_secs: u64,
    /// `maxEvents` per poll (1..=1000).
    #[serde(default = "default_max_events")]
    pub max_events: u32,
}

fn default_ssf_poll() -> u64 {
    60
}

fn default_max_events() -> u32 {
    100
}

/// `s3://bucket/key` → (bucket, key).
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} is not s3://bucket/key"))?;
    let (bucket, key) = rest.split_once('/').ok_or_else(|| format!("{url:?} has no key (s3://bucket/key)"))?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        return Err(format!("{bucket:?} is not an S3 bucket name"));
    }
    if key.is_empty() || key.len() > 1024 || key.chars().any(char::is_control) {
        return Err(format!("{key:?} is not an S3 object key"));
    }
    Ok((bucket.to_string(), key.to_string()))
}

fn err<T>(k: &str, m: String) -> Result<T, (String, String)> {
    Err((k.to_string(), m))
}

pub(super) fn validate(l: &Locks, issuers: &[super::Issuer]) -> Result<(), (String, String)> {
    if let Some(u) = &l.fleet_list {
        parse_s3_url(u).or_else(|m| err("locks.fleet_list", m))?;
    }
    if !l.s3_endpoint.is_empty() {
        super::check_url(&l.s3_endpoint).or_else(|m| err("locks.s3_endpoint", m))?;
    }
    if !(5..=86_400).contains(&l.poll_secs) {
        return err("locks.poll_secs", "must be 5..=86400".into());
    }
    if !(1..=120).contains(&l.fetch_timeout_secs) {
        return err("locks.fetch_timeout_secs", "must be 1..=120".into());
    }
    if l.max_list_bytes == 0 || l.max_list_bytes > MAX_LIST_BYTES_CEILING {
        return err("locks.max_list_bytes", format!("must be 1..={MAX_LIST_BYTES_CEILING}"));
    }
    if l.max_entries == 0 || l.max_entries > 100_000 {
        return err("locks.max_entries", "must be 1..=100000".into());
    }
    if l.stale_warn_secs < l.poll_secs {
        return err("locks.stale_warn_secs", "must be at least poll_secs".into());
    }
    for (i, s) in l.ssf.iter().enumerate() {
        let k = |f: &str| format!("locks.ssf[{i}].{f}");
        if !issuers.iter().any(|x| x.url == s.issuer) {
            return err(&k("issuer"), format!("{} is not a configured [[issuer]] url", s.issuer));
        }
        super::check_url(&s.poll_url).or_else(|m| err(&k("poll_url"), m))?;
        if s.audience.is_empty() {
            return err(&k("audience"), "must not be empty".into());
        }
        if !s.token_file.is_absolute() {
            return err(&k("token_file"), "must be an absolute path".into());
        }
        if !(5..=86_400).contains(&s.poll_secs) {
            return err(&k("poll_secs"), "must be 5..=86400".into());
        }
        if !(1..=1000).contains(&s.max_events) {
            return err(&k("max_events"), "must be 1..=1000".into());
        }
        if l.ssf[..i].iter().any(|o| o.poll_url == s.poll_url) {
            return err(&k("poll_url"), "configured twice".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://fleet-locks/prod/locks.json").unwrap(),
            ("fleet-locks".into(), "prod/locks.json".into())
        );
        assert!(parse_s3_url("https://fleet/x").is_err());
        assert!(parse_s3_url("s3://fleet").is_err(), "no key");
        assert!(parse_s3_url("s3://fleet/").is_err(), "empty key");
        assert!(parse_s3_url("s3://Fleet_Locks/x").is_err(), "not a bucket name");
        assert!(parse_s3_url("s3://ab/x").is_err(), "too short");
    }
}

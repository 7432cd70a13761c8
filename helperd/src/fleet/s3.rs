//! S3 GetObject, SigV4-signed with the instance role's credentials (the
//! aws-sigv4 crate, as STS's AssumeRole): path-style to a configured
//! endpoint (moto, a VPC endpoint), else virtual-hosted at the region's.

use crate::aws::Creds;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

/// RFC 3986 encoding of an object key, `/` kept (S3's canonical URI).
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The GetObject URL of `bucket`/`key`.
pub fn object_url(endpoint: &str, region: &str, bucket: &str, key: &str) -> String {
    let key = encode_key(key);
    if !endpoint.is_empty() {
        format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/'))
    } else if bucket.contains('.') {
        // A dotted bucket does not match the wildcard certificate: path-style.
        format!("https://s3.{region}.amazonaws.com/{bucket}/{key}")
    } else {
        format!("https://{bucket}.s3.{region}.amazonaws.com/{key}")
    }
}

/// The headers of a signed GET of `url` at unix time `now` (`extra` signed too).
pub fn signed_get_headers(
    creds: &Creds,
    region: &str,
    url: &str,
    extra: &[(&str, &str)],
    now: i64,
) -> Result<Vec<(String, String)>, String> {
    let identity: Identity = Credentials::new(
        &creds.access_key_id,
        creds.secret.expose(),
        Some(creds.token.expose().to_string()).filter(|t| !t.is_empty()),
        None,
        "pam-oidc",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0)))
        .settings(settings)
        .build()
        .map_err(|e| format!("signing: {e}"))?
        .into();
    let signable = SignableRequest::new("GET", url, extra.iter().copied(), SignableBody::Bytes(b""))
        .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| format!("signing: {e}"))?.into_parts();
    let mut headers: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    headers.extend(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            object_url("", "eu-west-1", "locks", "prod/a b.json"),
            "https://locks.s3.eu-west-1.amazonaws.com/prod/a%20b.json"
        );
        assert_eq!(object_url("", "us-east-1", "a.b", "k"), "https://s3.us-east-1.amazonaws.com/a.b/k");
        assert_eq!(object_url("http://127.0.0.1:5000/", "us-east-1", "locks", "k"), "http://127.0.0.1:5000/locks/k");
    }
}

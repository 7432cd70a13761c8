//! STS: AssumeRole (SigV4-signed with the instance credentials, via the
//! aws-sigv4 crate) and AssumeRoleWithWebIdentity (unsigned, with the user's
//! verified token). Throttling and 5xx are retried a bounded number of times
//! with jittered backoff, within the deadline.

use super::{Creds, Failure};
use crate::clock::Clock;
use crate::fetch::Transport;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use quick_xml::events::Event;
use std::time::{Duration, SystemTime};

/// The text of the first element named `tag`.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut inside = false;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == tag => inside = true,
            Ok(Event::Text(t)) if inside => {
                let raw: &str = t.as_ref();
                return Some(
                    quick_xml::escape::unescape(raw)
                        .map_or_else(|_| raw.to_string(), |s| s.into_owned())
                        .trim()
                        .to_string(),
                );
            }
            Ok(Event::End(_)) if inside => return Some(String::new()),
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

fn retryable(status: u16, code: &str) -> bool {
    status >= 500
        || matches!(code, "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "ServiceUnavailable")
}

/// POST an STS action; `signer` is the instance credentials for AssumeRole.
/// `deadline` is on the clock's monotonic time.
#[allow(clippy::too_many_arguments)]
pub fn call(
    http: &dyn Transport,
    clock: &dyn Clock,
    endpoint: &str,
    region: &str,
    body: &str,
    signer: Option<&Creds>,
    deadline: Duration,
    max_attempts: u32,
) -> Result<String, Failure> {
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut headers =
            vec![("content-type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string())];
        if let Some(c) = signer {
            let identity: Identity = Credentials::new(
                &c.access_key_id,
                c.secret.expose(),
                Some(c.token.expose().to_string()).filter(|t| !t.is_empty()),
                None,
                "pam-oidc",
            )
            .into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(region)
                .name("sts")
                .time(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(clock.now()).unwrap_or(0)))
                .settings(SigningSettings::default())
                .build()
                .map_err(|e| Failure::new("sts-error", format!("signing: {e}")))?
                .into();
            let signable = SignableRequest::new(
                "POST",
                &url,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::Bytes(body.as_bytes()),
            )
            .map_err(|e| Failure::new("sts-error", format!("signing: {e}")))?;
            let (instructions, _) =
                sign(signable, &params).map_err(|e| Failure::new("sts-error", format!("signing: {e}")))?.into_parts();
            headers.extend(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, resp) = http
            .send("POST", &url, &h, body.as_bytes())
            .map_err(|e| Failure::new("sts-unreachable", format!("STS unreachable: {e}")))?;
        let text = String::from_utf8_lossy(&resp).into_owned();
        if status == 200 {
            return Ok(text);
        }
        let code = xml_text(&text, "Code").unwrap_or_default();
        let message = xml_text(&text, "Message").unwrap_or_default();
        if retryable(status, &code) && attempt < max_attempts {
            let jitter = u64::from(clock.mono().subsec_nanos() % 100);
            let wait = Duration::from_millis(100 * (1 << attempt.min(6)) + jitter);
            if clock.mono() + wait < deadline {
                clock.sleep(wait);
                continue;
            }
        }
        let kind = match code.as_str() {
            "AccessDenied" => "sts-access-denied",
            "ExpiredTokenException" | "ExpiredToken" => "sts-expired-token",
            "SignatureDoesNotMatch" | "RequestExpired" if message.to_ascii_lowercase().contains("expired") => {
                "clock-skew"
            }
            c if retryable(status, c) => "sts-throttled",
            _ => "sts-error",
        };
        let mut reason = format!("STS HTTP {status} {code}: {}", oidc_core::clean(&message));
        if kind == "clock-skew" {
            reason.push_str(" (check the clock: the request's signature time was refused)");
        }
        if attempt > 1 {
            reason.push_str(&format!(" after {attempt} attempts"));
        }
        return Err(Failure::new(kind, reason));
    }
}

/// Credentials from an AssumeRole* response.
pub fn parse_credentials(xml: &str) -> Result<Creds, Failure> {
    match (
        xml_text(xml, "AccessKeyId"),
        xml_text(xml, "SecretAccessKey"),
        xml_text(xml, "SessionToken"),
        xml_text(xml, "Expiration"),
    ) {
        (Some(a), Some(s), Some(t), Some(e)) => Creds::new(a, s, t, &e),
        _ => Err(Failure::new("sts-error", "STS response without credentials".into())),
    }
}

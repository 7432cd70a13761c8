//! EC2 instance metadata, IMDSv2 only: PUT a session token, then GET with it.
//! A metadata service that refuses the PUT (IMDSv1-only) is an error: we
//! never fall back to unauthenticated GETs.

use super::{Creds, Failure};
use crate::fetch::Transport;
use serde_json::Value;

pub fn instance_credentials(http: &dyn Transport, endpoint: &str) -> Result<Creds, Failure> {
    let ep = endpoint.trim_end_matches('/');
    let unreachable = |e: String| Failure::new("imds-unreachable", format!("instance metadata unreachable: {e}"));
    let (status, token) = http
        .send("PUT", &format!("{ep}/latest/api/token"), &[("X-aws-ec2-metadata-token-ttl-seconds", "300")], b"")
        .map_err(unreachable)?;
    if status != 200 || token.is_empty() {
        return Err(Failure::new(
            "imdsv2-refused",
            format!("IMDSv2 session token refused (HTTP {status}); IMDSv1 is never used"),
        ));
    }
    let token = String::from_utf8(token).map_err(|_| Failure::new("imds-error", "token is not text".into()))?;
    let get = |path: &str| -> Result<Vec<u8>, Failure> {
        let (st, body) = http
            .send(
                "GET",
                &format!("{ep}/latest/meta-data/iam/security-credentials/{path}"),
                &[("X-aws-ec2-metadata-token", &token)],
                b"",
            )
            .map_err(unreachable)?;
        if st != 200 {
            return Err(Failure::new(
                "imds-error",
                format!("instance metadata: HTTP {st} for security-credentials/{path}"),
            ));
        }
        Ok(body)
    };
    let roles = get("")?;
    let role = String::from_utf8_lossy(&roles).lines().next().unwrap_or("").trim().to_string();
    if role.is_empty() || role.contains('/') {
        return Err(Failure::new("imds-error", "no instance role attached".into()));
    }
    let v: Value = serde_json::from_slice(&get(&role)?)
        .map_err(|e| Failure::new("imds-error", format!("credentials JSON: {e}")))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match (s("AccessKeyId"), s("SecretAccessKey"), s("Token"), s("Expiration")) {
        (Some(a), Some(k), Some(t), Some(e)) => Creds::new(a, k, t, &e),
        _ => Err(Failure::new("imds-error", format!("instance role {role}: incomplete credentials"))),
    }
}

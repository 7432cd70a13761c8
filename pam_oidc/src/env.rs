//! The `OIDC_*` PAM environment: the contract between the auth stage, the
//! account and session stages (sshd runs auth in a forked child, so module
//! data would be lost before the session; `pam_putenv` values survive), and
//! the session's processes. Written by [`publish`], read once by [`Published::read`].

use crate::handle::Pam;
use oidc_core::Rejection;
use oidc_core::SessionClaims;

/// The account logged into (the PAM user).
pub const ENV_USER: &str = "OIDC_USER";
/// The token's login name (differs from OIDC_USER for a role account).
pub const ENV_IDENTITY: &str = "OIDC_IDENTITY";
pub const ENV_ISSUER: &str = "OIDC_ISSUER";
pub const ENV_SUB: &str = "OIDC_SUB";
/// Host group names (what NSS serves and policy compares).
pub const ENV_GROUPS: &str = "OIDC_GROUPS";
/// The token's own groups (a deny list also catches them in any case or punctuation).
pub const ENV_IDP_GROUPS: &str = "OIDC_IDP_GROUPS";
pub const ENV_JTI: &str = "OIDC_JTI";
pub const ENV_EXP: &str = "OIDC_EXP";
/// Refers open_session to the verified login helperd holds (useless to anyone but root).
pub const ENV_LOGIN_ID: &str = "OIDC_LOGIN_ID";

/// What an earlier stage of this transaction published (empty strings and
/// lists where a variable is unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub user: String,
    pub issuer: String,
    pub sub: String,
    pub jti: String,
    pub groups: Vec<String>,
    pub idp_groups: Vec<String>,
    pub login_id: String,
}

impl Published {
    pub fn read(pam: &dyn Pam) -> Published {
        let get = |k| pam.getenv(k).unwrap_or_default();
        let list = |k| -> Vec<String> { get(k).split(',').filter(|g| !g.is_empty()).map(str::to_string).collect() };
        Published {
            user: get(ENV_USER),
            issuer: get(ENV_ISSUER),
            sub: get(ENV_SUB),
            jti: get(ENV_JTI),
            groups: list(ENV_GROUPS),
            idp_groups: list(ENV_IDP_GROUPS),
            login_id: get(ENV_LOGIN_ID),
        }
    }
}

/// Hand the verified identity to later stages (and, through sshd, to the
/// session's environment): non-secret values only. `OIDC_LOGIN_ID` lets
/// open_session bind the claims helperd holds to the session.
pub fn publish(pam: &mut dyn Pam, c: &SessionClaims, login_id: Option<&str>) -> Result<(), Rejection> {
    let groups = c.groups.join(",");
    let idp_groups = c.idp_groups.join(",");
    let exp = c.exp.to_string();
    let env = [
        (ENV_USER, c.account.as_str()),
        (ENV_IDENTITY, c.identity.as_str()),
        (ENV_ISSUER, c.issuer.as_str()),
        (ENV_SUB, c.sub.as_str()),
        (ENV_GROUPS, groups.as_str()),
        (ENV_IDP_GROUPS, idp_groups.as_str()),
        (ENV_JTI, c.jti.as_deref().unwrap_or("")),
        (ENV_EXP, exp.as_str()),
        (ENV_LOGIN_ID, login_id.unwrap_or("")),
    ];
    for (k, val) in env {
        pam.putenv(k, val).map_err(|rc| Rejection::Config(format!("pam_putenv {k} failed ({rc:?})")))?;
    }
    pam.keep_verified(c);
    Ok(())
}

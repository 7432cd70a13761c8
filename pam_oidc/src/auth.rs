//! `pam_sm_authenticate`: get the token, verify it, check it names the PAM
//! user, and hand the verified identity to later stages via the PAM
//! environment (sshd runs auth in a forked child, so `pam_set_data` would be
//! lost before the session; `pam_putenv` values survive).

use crate::args::{self, Args, TokenSource};
use crate::handle::{Pam, Prio};
use oidc_core::audit::AuditEvent;
use oidc_core::config::Config;
use oidc_core::ipc;
use oidc_core::login::{verify_token, Outcome};
use oidc_core::session::SessionClaims;
use oidc_core::{Rejection, Secret};
use pam::constants::PamResultCode;
use std::time::Duration;

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

/// The PAM code for a rejection: keys/config trouble is "info unavailable",
/// everything else an authentication error. Both refuse.
pub fn code_for(r: &Rejection) -> PamResultCode {
    match r {
        Rejection::KeysUnavailable(_)
        | Rejection::Config(_)
        | Rejection::AccountsUnavailable(_)
        | Rejection::DeviceError(_) => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        _ => PamResultCode::PAM_AUTH_ERR,
    }
}

/// Load args and config, or log why not. Shared by every hook.
pub fn setup(pam: &mut dyn Pam, raw: &[String], stage: &'static str) -> Result<(Args, Config), PamResultCode> {
    // A broken argument or config is the operator's error: logged, fatal for
    // OIDC users (fail closed), and never a lock-out for local users, whose
    // stacks reach this module first (`default=die`).
    let deny = |pam: &mut dyn Pam, r: Rejection, rc, cfg: Option<&Config>| {
        let user = pam.user().unwrap_or_default();
        let local =
            !user.is_empty() && matches!(crate::local::classify_with(cfg, pam, &user), crate::local::Kind::Local(_));
        let mut ev = AuditEvent {
            stage,
            service: pam.service(),
            user: user.clone(),
            rhost: pam.rhost(),
            code: r.code().into(),
            reason: r.to_string(),
            ..Default::default()
        };
        if local {
            ev.reason = format!(
                "{}; {} is a local account: left to the other modules",
                ev.reason,
                oidc_core::audit::clean(&user)
            );
            pam.log(Prio::Err, &ev.to_string());
            return Err(PamResultCode::PAM_IGNORE);
        }
        pam.log(Prio::Err, &ev.to_string());
        pam.error(r.user_message());
        Err(rc)
    };
    let a = match args::parse(raw) {
        Ok(a) => a,
        Err(e) => {
            // The ranges of the config the stack names, if it loads, tell local from OIDC.
            let path = raw.iter().find_map(|x| x.strip_prefix("config=")).unwrap_or(oidc_core::config::DEFAULT_PATH);
            let cfg = Config::load(std::path::Path::new(path)).ok();
            return deny(pam, Rejection::Config(e), PamResultCode::PAM_SERVICE_ERR, cfg.as_ref());
        }
    };
    match Config::load(&a.config) {
        Ok(c) => match &a.device {
            Some(Some(url)) if c.issuer(url).is_none_or(|i| i.device_client_id.is_none()) => {
                let why = format!("device_code={url}: not a configured [[issuer]] with a device_client_id");
                deny(pam, Rejection::Config(why), PamResultCode::PAM_SERVICE_ERR, Some(&c))
            }
            Some(None) if !c.issuers.iter().any(|i| i.device_client_id.is_some()) => {
                let why = "device_code: no configured [[issuer]] has a device_client_id".to_string();
                deny(pam, Rejection::Config(why), PamResultCode::PAM_SERVICE_ERR, Some(&c))
            }
            _ => Ok((a, c)),
        },
        Err(e) => deny(pam, Rejection::Config(e.to_string()), PamResultCode::PAM_AUTHINFO_UNAVAIL, None),
    }
}

fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|&b| b == b'.').count() == 2
}

fn get_token(pam: &mut dyn Pam, a: &Args, cfg: &Config) -> Result<Secret, Rejection> {
    let from_stack = pam.authtok();
    match a.source {
        TokenSource::UseFirstPass => {
            return from_stack.ok_or_else(|| Rejection::NoToken("use_first_pass and no PAM_AUTHTOK".into()));
        }
        TokenSource::TryFirstPass => {
            if let Some(t) = from_stack.filter(|t| looks_like_jwt(t.expose().trim())) {
                return Ok(t);
            }
        }
        TokenSource::Prompt => {}
    }
    read_token(pam, &cfg.pam.prompt, cfg.pam.max_token_bytes)
}

/// Most parts a token may come in (64 × 1000 bytes > any size cap we accept).
pub const MAX_PARTS: usize = 64;

/// Prompt for a token, following the continuation protocol: a reply that ends
/// in `\` means more follows, and part N is asked for with
/// "OIDC token (part N): " (what `pam-oidc-askpass` answers). This carries
/// tokens of any size through sudo (1023-byte replies), ssh askpass (1023) and
/// terminals (4095-byte lines).
pub fn read_token(pam: &mut dyn Pam, first_prompt: &str, max_bytes: usize) -> Result<Secret, Rejection> {
    // One buffer of the final size, wiped on drop: no reallocation leaves a
    // freed copy of part of the token behind.
    let mut token = zeroize::Zeroizing::new(String::with_capacity(max_bytes));
    for part in 1..=MAX_PARTS {
        let prompt = if part == 1 { first_prompt.to_string() } else { format!("OIDC token (part {part}): ") };
        let reply = match pam.prompt_secret(&prompt) {
            Ok(Some(t)) => t,
            Ok(None) => Secret::default(),
            Err(rc) => return Err(Rejection::NoToken(format!("conversation failed at part {part} ({rc:?})"))),
        };
        let piece = reply.expose().trim();
        let (piece, more) = match piece.strip_suffix('\\') {
            Some(p) => (p.trim_end(), true),
            None => (piece, false),
        };
        if token.len() + piece.len() > max_bytes {
            return Err(Rejection::Oversize { len: token.len() + piece.len(), max: max_bytes });
        }
        token.push_str(piece);
        if !more {
            return if token.is_empty() {
                Err(Rejection::NoToken("empty reply".into()))
            } else {
                Ok(Secret::new(std::mem::take(&mut *token)))
            };
        }
    }
    Err(Rejection::NoToken(format!("more than {MAX_PARTS} parts")))
}

/// `clock` is read when a decision is made (a device-code login may take minutes).
pub fn authenticate(pam: &mut dyn Pam, raw: &[String], clock: &dyn Fn() -> i64) -> PamResultCode {
    let (a, cfg) = match setup(pam, raw, "auth") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    #[cfg(feature = "fault-injection")]
    if a.fault.as_deref() == Some("panic") {
        #[allow(clippy::panic)]
        {
            panic!("fault injection: panic in pam_sm_authenticate"); // test-only (feature fault-injection)
        }
    }
    let user = match pam.user() {
        Ok(u) => u,
        Err(rc) => {
            pam.log(Prio::Err, &format!("auth result=deny code=no-user reason=\"cannot get PAM user ({rc:?})\""));
            return PamResultCode::PAM_USER_UNKNOWN;
        }
    };
    // A local or directory account is not ours: the other modules decide, as
    // they did before pam_oidc (no prompt, no audit line).
    match crate::local::classify(&cfg, pam, &user) {
        crate::local::Kind::Local(_) => return PamResultCode::PAM_IGNORE,
        crate::local::Kind::Unknown => pam.log(Prio::Warning, &crate::local::unknown_user_note(&user)),
        crate::local::Kind::Oidc => {}
    }
    let mut ev = AuditEvent {
        stage: "auth",
        service: pam.service(),
        user: user.clone(),
        rhost: pam.rhost(),
        ..Default::default()
    };
    // A second run of the module in one transaction (our line and the
    // common-auth profile's both in a stack) reuses the claims the first run
    // verified — one prompt — but holds them to this line's own demands.
    if let Some(c) = pam.verified().filter(|c| c.account == user && !a.step_up) {
        let leeway = cfg.issuer(&c.issuer).map_or(0, |i| i.leeway_secs);
        let rest = oidc_core::session::Demand { groups: vec![], ..a.demand(&cfg) };
        let judged = oidc_core::policy::check_groups(&c.groups, &c.idp_groups, &cfg.policy, &a.require_groups)
            .and_then(|()| oidc_core::session::satisfies(&c, &rest, clock(), leeway).map_err(Rejection::StepUpFailed));
        if let Err(r) = judged {
            (ev.issuer, ev.sub, ev.jti) = (c.issuer.clone(), c.sub.clone(), c.jti.clone().unwrap_or_default());
            return deny(pam, ev, &r, format!("{r} (claims verified earlier in this transaction)"));
        }
        pam.log(Prio::Info, &format!("auth user={} already authenticated in this transaction", audit_clean(&user)));
        return PamResultCode::PAM_SUCCESS;
    }
    // Inside a live OIDC session (e.g. sudo): its verified claims may do, if
    // they still satisfy what this stack demands. Otherwise: a fresh token.
    let client = ipc::Client::for_caller(&cfg.helperd, Duration::from_millis(cfg.pam.ipc_timeout_ms));
    let mut why_not_session = String::new();
    let mut lacks_group = false;
    if !a.step_up {
        match crate::reuse::session_claims(
            &client,
            &user,
            &a.demand(&cfg),
            clock(),
            &crate::reuse::leeway_of(&cfg),
            cfg.pam.reuse_max_age_secs,
        ) {
            crate::reuse::Reuse::Usable(c, detail) => {
                ev.issuer = c.issuer.clone();
                ev.sub = c.sub.clone();
                ev.jti = c.jti.clone().unwrap_or_default();
                if let Err(r) =
                    oidc_core::policy::check_groups(&c.groups, &c.idp_groups, &cfg.policy, &a.require_groups)
                {
                    return deny(pam, ev, &r, r.to_string());
                }
                if let Err(r) = publish(pam, &c, None) {
                    return deny(pam, ev, &r, r.to_string());
                }
                ev.allow = true;
                ev.code = "ok".into();
                ev.reason =
                    format!("claims of {detail} reused; groups={}", oidc_core::audit::clean(&c.groups.join(",")));
                pam.log(Prio::Notice, &ev.to_string());
                return PamResultCode::PAM_SUCCESS;
            }
            other => {
                lacks_group = matches!(other, crate::reuse::Reuse::LacksGroup(_));
                why_not_session = other.why().to_string();
            }
        }
    }
    let token = match a.device_issuer(&cfg) {
        Some(issuer) => crate::device::login(pam, &cfg, &client, issuer),
        // The session's claims fell short of the stack's group: say so in the
        // prompt (sudo passes PAM_SILENT, so a message would not be shown).
        None if lacks_group => {
            let mut c = cfg.clone();
            let base = c.pam.prompt.trim_end().trim_end_matches(':');
            c.pam.prompt = format!("{base} (this session is not in {}): ", a.require_groups.join(" or "));
            get_token(pam, &a, &c)
        }
        None => get_token(pam, &a, &cfg),
    };
    let token = match token {
        Ok(t) => t,
        // sudo from a script (no tty) after the session's claims fell short:
        // the refusal names what fell short, not the silent prompt.
        Err(r @ Rejection::NoToken(_)) if lacks_group => {
            let want = a.require_groups.join(",");
            let r2 = Rejection::NotInAllowedGroup { want: format!("{want} (require_group); {why_not_session}; {r}") };
            return deny(pam, ev, &r2, r2.to_string());
        }
        Err(r) if !why_not_session.is_empty() => {
            let reason = format!("{r}; session claims not used: {why_not_session}");
            return deny(pam, ev, &r, reason);
        }
        Err(r) => return deny(pam, ev, &r, r.to_string()),
    };
    let mut refresh = |iss: &str| client.refresh_jwks(iss);
    let now = clock();
    let token = Secret::new(token.expose().trim().to_string());
    let out: Outcome = verify_token(&cfg, token.expose(), now, &mut refresh);
    if a.debug {
        for c in &out.report.checks {
            let r = match &c.result {
                Ok(d) => format!("pass {}", oidc_core::audit::clean(d)),
                Err(e) => format!("fail {e}"),
            };
            pam.log(Prio::Info, &format!("auth debug check={} {r}", c.name));
        }
    }
    ev.issuer = out.issuer.clone().unwrap_or_default();
    ev.sub = out.sub.clone().unwrap_or_default();
    ev.jti = out.jti.clone().unwrap_or_default();
    let mut reason = out.reason();
    let v = match out.result {
        Ok(v) => v,
        Err(r) => {
            // A reply cut at a conversation's limit: say how long tokens get through.
            if [511, 512, 1023, 1024, 4095, 4096].contains(&token.len()) {
                reason.push_str(&format!(
                    "; the reply is exactly {} bytes: the client probably cut a longer token — send it in \
                     parts (continuation protocol: pam-oidc-askpass)",
                    token.len()
                ));
            }
            return deny(pam, ev, &r, reason);
        }
    };
    // What the token's groups are on this host (the issuer's mapping): policy,
    // NSS and AWS rules all speak these names.
    let Some(icfg) = cfg.issuer(&v.issuer) else {
        let r = Rejection::UntrustedIssuer(v.issuer.clone());
        return deny(pam, ev, &r, r.to_string());
    };
    let local = local_db(&cfg);
    let (host_groups, mut warnings) = oidc_core::accounts::host_groups(&v.groups, icfg, &cfg, &local);
    warnings.splice(0..0, v.warnings.iter().cloned());
    let probes = oidc_core::accounts::deny_probes(icfg, &v.all_groups, v.groups_incomplete);
    // Its own account, or a role account (e.g. `deploy`) a rule of its issuer grants.
    let role = match oidc_core::accounts::account_for(&cfg, &v, &user, &host_groups) {
        Ok(r) => r,
        Err(r) => return deny(pam, ev, &r, format!("{r}{}", notes(&warnings))),
    };
    // Group policy here too, so a stack without our `account` line (or an
    // application that skips pam_acct_mgmt) cannot bypass denied_groups.
    if let Err(r) = oidc_core::policy::check_groups(&host_groups, &probes, &cfg.policy, &a.require_groups) {
        return deny(pam, ev, &r, format!("{r}{}", notes(&warnings)));
    }
    let mut claims = SessionClaims::from_verified(&v, &user, host_groups, probes);
    claims.verified_at = now;
    let fresh = oidc_core::session::Demand { groups: vec![], ..a.demand(&cfg) };
    let leeway = cfg.issuer(&v.issuer).map_or(0, |i| i.leeway_secs);
    if let Err(why) = oidc_core::session::satisfies(&claims, &fresh, now, leeway) {
        let r = Rejection::StepUpFailed(why);
        return deny(pam, ev, &r, r.to_string());
    }
    let (account, login_id) = match crate::admit::admit(&cfg, &client, &v, &mut claims, role.is_some(), Some(&token)) {
        Ok((d, id)) => match &role {
            Some(how) => (format!("{how} for identity {}; {d}", claims.identity), id),
            None => (format!("account: {d}"), id),
        },
        Err(r) => return deny(pam, ev, &r, format!("{r}{}", notes(&warnings))),
    };
    // helperd may have dropped groups it could not serve (another issuer's,
    // a name now local): policy holds on what the host really serves.
    if let Err(r) = oidc_core::policy::check_groups(&claims.groups, &claims.idp_groups, &cfg.policy, &a.require_groups)
    {
        return deny(pam, ev, &r, format!("{r}{}", notes(&warnings)));
    }
    if let Err(r) = publish(pam, &claims, login_id.as_deref()) {
        return deny(pam, ev, &r, r.to_string());
    }
    ev.allow = true;
    ev.code = "ok".into();
    let step =
        if why_not_session.is_empty() { String::new() } else { format!("; fresh token because {why_not_session}") };
    ev.reason = format!(
        "{reason}{step}; {}; alg={} kid={} groups={}{}",
        oidc_core::audit::clean_n(&account, oidc_core::audit::MAX_CONTEXT),
        v.alg,
        v.kid.as_deref().unwrap_or("-"),
        oidc_core::audit::clean(&claims.groups.join(",")),
        notes(&warnings)
    );
    pam.log(Prio::Notice, &ev.to_string());
    PamResultCode::PAM_SUCCESS
}

/// The host's own users and groups (files): automatic group names that clash
/// with them never count for policy (helperd drops them from NSS too).
fn local_db(cfg: &Config) -> oidc_core::accounts::LocalDb {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    oidc_core::accounts::LocalDb::parse(&read(&cfg.accounts.passwd_file), &read(&cfg.accounts.group_file))
}

fn audit_clean(s: &str) -> String {
    oidc_core::audit::clean(s)
}

/// Dropped groups and other warnings, for the audit line (escaped, bounded).
fn notes(w: &[String]) -> String {
    if w.is_empty() {
        return String::new();
    }
    format!("; warnings: {}", oidc_core::audit::clean_n(&w.join("; "), oidc_core::audit::MAX_CONTEXT))
}

/// Hand the verified identity to later stages (and, through sshd, to the
/// session's environment): non-secret values only. `OIDC_LOGIN_ID` lets
/// open_session bind the claims helperd holds to the session.
fn publish(pam: &mut dyn Pam, c: &SessionClaims, login_id: Option<&str>) -> Result<(), Rejection> {
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

fn deny(pam: &mut dyn Pam, mut ev: AuditEvent, r: &Rejection, reason: String) -> PamResultCode {
    ev.allow = false;
    ev.code = r.code().into();
    ev.reason = reason;
    pam.log(Prio::Warning, &ev.to_string());
    pam.error(r.user_message());
    code_for(r)
}

//! `pam_sm_authenticate`: get the token, verify it, check it names the PAM
//! user, and hand the verified identity to later stages (see [`crate::env`]).
//! [`decide`] computes the decision as a value; [`crate::verdict::finish`]
//! writes it.

use crate::args::{self, Args, TokenSource};
use crate::edges::Edges;
use crate::handle::{Pam, Prio};
use crate::prompt::{looks_like_jwt, read_token};
use crate::verdict::{finish, Admission, Judgement, Publish, Refusal};
use oidc_core::AuditEvent;
use oidc_core::Config;
use oidc_core::SessionClaims;
use oidc_core::{verify_token, TokenOutcome};
use oidc_core::{Rejection, Secret};
use pam::constants::PamResultCode;

/// The PAM code for a rejection: keys/config trouble is "info unavailable",
/// everything else an authentication error. Both refuse.
pub fn code_for(r: &Rejection) -> PamResultCode {
    match r {
        Rejection::KeysUnavailable(_)
        | Rejection::Config(_)
        | Rejection::AccountsUnavailable(_)
        | Rejection::DeviceError(_)
        | Rejection::CibaError(_) => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        _ => PamResultCode::PAM_AUTH_ERR,
    }
}

/// A refusal with the auth stage's code for it.
fn refuse(r: Rejection, reason: String) -> Result<Admission, Refusal> {
    let rc = code_for(&r);
    Err(Refusal::new(r, reason, rc))
}

/// The audit record of a hook, before its outcome.
pub fn event(pam: &mut dyn Pam, stage: &'static str, user: &str) -> AuditEvent {
    AuditEvent { stage, service: pam.service(), user: user.to_string(), rhost: pam.rhost(), ..Default::default() }
}

/// Load args and config, or judge why not. Shared by every hook.
pub fn setup(pam: &mut dyn Pam, raw: &[String], stage: &'static str) -> Result<(Args, Config), Box<Judgement>> {
    // A broken argument or config is the operator's error: logged, fatal for
    // OIDC users (fail closed), and never a lock-out for local users, whose
    // stacks reach this module first (`default=die`).
    let deny = |pam: &mut dyn Pam, r: Rejection, rc, cfg: Option<&Config>| {
        let user = pam.user().unwrap_or_default();
        let local =
            !user.is_empty() && matches!(crate::local::classify_with(cfg, pam, &user), crate::local::Kind::Local(_));
        let mut j = Judgement::new(event(pam, stage, &user));
        if local {
            let mut ev = j.ev.clone();
            ev.code = r.code().into();
            ev.reason = format!("{r}; {} is a local account: left to the other modules", oidc_core::clean(&user));
            j.notes.push((Prio::Err, ev.to_string()));
            return Err(Box::new(j));
        }
        let reason = r.to_string();
        Err(Box::new(j.with(Err(Refusal { rejection: r, reason, rc, prio: Prio::Err }))))
    };
    let a = match args::parse(raw) {
        Ok(a) => a,
        Err(e) => {
            // The ranges of the config the stack names, if it loads, tell local from OIDC.
            let path = raw.iter().find_map(|x| x.strip_prefix("config=")).unwrap_or(oidc_core::DEFAULT_CONFIG_PATH);
            let cfg = Config::load(std::path::Path::new(path)).ok();
            return deny(pam, Rejection::Config(e), PamResultCode::PAM_SERVICE_ERR, cfg.as_ref());
        }
    };
    match Config::load(&a.config) {
        Ok(c) => match &a.device {
            _ if a.device.is_some() && a.ciba.is_some() => {
                let why = "device_code and ciba on one line: choose one".to_string();
                deny(pam, Rejection::Config(why), PamResultCode::PAM_SERVICE_ERR, Some(&c))
            }
            _ if a.ciba.is_some() && a.ciba_issuer(&c).is_none() => {
                let why = match &a.ciba {
                    Some(Some(url)) => format!("ciba={url}: not a configured [[issuer]] with a ciba_client_id"),
                    _ => "ciba: no configured [[issuer]] has a ciba_client_id".to_string(),
                };
                deny(pam, Rejection::Config(why), PamResultCode::PAM_SERVICE_ERR, Some(&c))
            }
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

pub fn authenticate(pam: &mut dyn Pam, raw: &[String], edges: &dyn Edges) -> PamResultCode {
    let (a, cfg) = match setup(pam, raw, "auth") {
        Ok(x) => x,
        Err(j) => return finish(pam, *j),
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
    let j = decide(pam, &a, &cfg, &user, edges);
    finish(pam, j)
}

/// The auth decision for `user`; reads the handle (prompts, items, module
/// data) and asks helperd, writes nothing to the handle.
pub fn decide(pam: &mut dyn Pam, a: &Args, cfg: &Config, user: &str, edges: &dyn Edges) -> Judgement {
    let mut j = Judgement::new(event(pam, "auth", user));
    // A local or directory account is not ours: the other modules decide, as
    // they did before pam_oidc (no prompt, no audit line).
    match crate::local::classify(cfg, pam, user) {
        crate::local::Kind::Local(_) => return j,
        crate::local::Kind::Unknown => j.notes.push((Prio::Warning, crate::local::unknown_user_note(user))),
        crate::local::Kind::Oidc => {}
    }
    let result = judge(pam, a, cfg, user, edges, &mut j);
    j.with(result)
}

fn identify(ev: &mut AuditEvent, c: &SessionClaims) {
    (ev.issuer, ev.sub, ev.jti) = (c.issuer.clone(), c.sub.clone(), c.jti.clone().unwrap_or_default());
}

fn judge(
    pam: &mut dyn Pam,
    a: &Args,
    cfg: &Config,
    user: &str,
    edges: &dyn Edges,
    j: &mut Judgement,
) -> Result<Admission, Refusal> {
    // A second run of the module in one transaction (our line and the
    // common-auth profile's both in a stack) reuses the claims the first run
    // verified — one prompt — but holds them to this line's own demands.
    if let Some(c) = pam.verified().filter(|c| c.account == user && !a.step_up) {
        identify(&mut j.ev, &c);
        let leeway = cfg.leeway(&c.issuer);
        let rest = oidc_core::Demand { groups: vec![], ..a.demand(cfg) };
        let judged = oidc_core::check_groups(&c.groups, &c.idp_groups, &cfg.policy, &a.require_groups)
            .and_then(|()| oidc_core::satisfies(&c, &rest, edges.now(), leeway).map_err(Rejection::StepUpFailed));
        return match judged {
            Err(r) => {
                let reason = format!("{r} (claims verified earlier in this transaction)");
                refuse(r, reason)
            }
            Ok(()) => {
                Ok(Admission::Allowed { reason: "claims verified earlier in this transaction".into(), publish: None })
            }
        };
    }
    // Inside a live OIDC session (e.g. sudo): its verified claims may do, if
    // they still satisfy what this stack demands. Otherwise: a fresh token.
    let helper = edges.helper(cfg);
    let mut why_not_session = String::new();
    let mut lacks_group = false;
    if !a.step_up {
        let reuse = crate::reuse::none_can_lend(cfg, edges.real_uid()).unwrap_or_else(|| {
            crate::reuse::session_claims(
                &*helper,
                user,
                &a.demand(cfg),
                edges.now(),
                &crate::reuse::leeway_of(cfg),
                cfg.pam.reuse_max_age_secs,
            )
        });
        match reuse {
            crate::reuse::Reuse::Usable(c, detail) => {
                identify(&mut j.ev, &c);
                if let Err(r) = oidc_core::check_groups(&c.groups, &c.idp_groups, &cfg.policy, &a.require_groups) {
                    let reason = r.to_string();
                    return refuse(r, reason);
                }
                let reason = format!("claims of {detail} reused; groups={}", oidc_core::clean(&c.groups.join(",")));
                return Ok(Admission::Allowed {
                    reason,
                    publish: Some(Box::new(Publish { claims: *c, login_id: None })),
                });
            }
            other => {
                lacks_group = matches!(other, crate::reuse::Reuse::LacksGroup(_));
                why_not_session = other.why().to_string();
            }
        }
    }
    let pushed = a.ciba_issuer(cfg);
    let token = match (pushed, a.device_issuer(cfg)) {
        (Some(issuer), _) => crate::ciba::login(pam, cfg, &*helper, issuer, &edges.hostname(), &a.acr),
        (None, Some(issuer)) => crate::device::login(pam, cfg, &*helper, issuer, &edges.hostname()),
        // The session's claims fell short of the stack's group: say so in the
        // prompt (sudo passes PAM_SILENT, so a message would not be shown).
        (None, None) if lacks_group => {
            let mut c = cfg.clone();
            let base = c.pam.prompt.trim_end().trim_end_matches(':');
            c.pam.prompt = format!("{base} (this session is not in {}): ", a.require_groups.join(" or "));
            get_token(pam, a, &c)
        }
        (None, None) => get_token(pam, a, cfg),
    };
    let token = match token {
        Ok(t) => t,
        // sudo from a script (no tty) after the session's claims fell short:
        // the refusal names what fell short, not the silent prompt.
        Err(r @ Rejection::NoToken(_)) if lacks_group => {
            let want = a.require_groups.join(",");
            let r2 = Rejection::NotInAllowedGroup { want: format!("{want} (require_group); {why_not_session}; {r}") };
            let reason = r2.to_string();
            return refuse(r2, reason);
        }
        Err(r) if !why_not_session.is_empty() => {
            let reason = format!("{r}; session claims not used: {why_not_session}");
            return refuse(r, reason);
        }
        Err(r) => {
            let reason = r.to_string();
            return refuse(r, reason);
        }
    };
    let mut refresh = |iss: &str| helper.refresh_jwks(iss);
    let now = edges.now();
    let token = Secret::new(token.expose().trim().to_string());
    let out: TokenOutcome = verify_token(cfg, token.expose(), now, &mut refresh);
    if a.debug {
        for c in &out.report.checks {
            let r = match &c.result {
                Ok(d) => format!("pass {}", oidc_core::clean(d)),
                Err(e) => format!("fail {e}"),
            };
            j.notes.push((Prio::Info, format!("auth debug check={} {r}", c.name)));
        }
    }
    j.ev.issuer = out.issuer.clone().unwrap_or_default();
    j.ev.sub = out.sub.clone().unwrap_or_default();
    j.ev.jti = out.jti.clone().unwrap_or_default();
    let mut reason = out.reason();
    let v = match out.result {
        Ok(v) => v,
        Err(r) => {
            // A reply cut at a conversation's limit: say how long tokens get through.
            reason.push_str(&crate::prompt::cut_hint(token.len()).unwrap_or_default());
            return refuse(r, reason);
        }
    };
    if let Some(r) = pushed.and_then(|i| crate::ciba::pinned(i, &v).err()) {
        let reason = r.to_string();
        return refuse(r, reason);
    }
    // What the token's groups are on this host (the issuer's mapping): policy,
    // NSS and AWS rules all speak these names.
    let Some(icfg) = cfg.issuer(&v.issuer) else {
        let r = Rejection::UntrustedIssuer(v.issuer.clone());
        let reason = r.to_string();
        return refuse(r, reason);
    };
    let local = local_db(cfg);
    let (host_groups, mut warnings) = oidc_core::host_groups(&v.groups, icfg, cfg, &local);
    warnings.splice(0..0, v.warnings.iter().cloned());
    let probes = oidc_core::deny_probes(icfg, &v.all_groups, v.groups_incomplete);
    // Its own account, or a role account (e.g. `deploy`) a rule of its issuer grants.
    let role = match oidc_core::account_for(cfg, &v, user, &host_groups) {
        Ok(r) => r,
        Err(r) => {
            let reason = format!("{r}{}", notes(&warnings));
            return refuse(r, reason);
        }
    };
    // Group policy here too, so a stack without our `account` line (or an
    // application that skips pam_acct_mgmt) cannot bypass denied_groups.
    if let Err(r) = oidc_core::check_groups(&host_groups, &probes, &cfg.policy, &a.require_groups) {
        let reason = format!("{r}{}", notes(&warnings));
        return refuse(r, reason);
    }
    let mut claims = SessionClaims::from_verified(&v, user, host_groups, probes);
    claims.verified_at = now;
    let fresh = oidc_core::Demand { groups: vec![], ..a.demand(cfg) };
    let leeway = icfg.leeway_secs;
    if let Err(why) = oidc_core::satisfies(&claims, &fresh, now, leeway) {
        let r = Rejection::StepUpFailed(why);
        let reason = r.to_string();
        return refuse(r, reason);
    }
    let (account, login_id) = match crate::admit::admit(cfg, &*helper, &v, &mut claims, role.is_some(), Some(&token)) {
        Ok((d, id)) => match &role {
            Some(how) => (format!("{how} for identity {}; {d}", claims.identity), id),
            None => (format!("account: {d}"), id),
        },
        Err(r) => {
            let reason = format!("{r}{}", notes(&warnings));
            return refuse(r, reason);
        }
    };
    // helperd may have dropped groups it could not serve (another issuer's,
    // a name now local): policy holds on what the host really serves.
    if let Err(r) = oidc_core::check_groups(&claims.groups, &claims.idp_groups, &cfg.policy, &a.require_groups) {
        let reason = format!("{r}{}", notes(&warnings));
        return refuse(r, reason);
    }
    let step =
        if why_not_session.is_empty() { String::new() } else { format!("; fresh token because {why_not_session}") };
    let reason = format!(
        "{reason}{step}; {}; alg={} kid={} groups={}{}",
        oidc_core::clean_n(&account, oidc_core::MAX_CONTEXT),
        v.alg,
        v.kid.as_deref().unwrap_or("-"),
        oidc_core::clean(&claims.groups.join(",")),
        notes(&warnings)
    );
    Ok(Admission::Allowed { reason, publish: Some(Box::new(Publish { claims, login_id })) })
}

/// The host's own users and groups (files): automatic group names that clash
/// with them never count for policy (helperd drops them from NSS too).
fn local_db(cfg: &Config) -> oidc_core::LocalDb {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    oidc_core::LocalDb::parse(&read(&cfg.accounts.passwd_file), &read(&cfg.accounts.group_file))
}

/// Dropped groups and other warnings, for the audit line (escaped, bounded).
fn notes(w: &[String]) -> String {
    if w.is_empty() {
        return String::new();
    }
    format!("; warnings: {}", oidc_core::clean_n(&w.join("; "), oidc_core::MAX_CONTEXT))
}

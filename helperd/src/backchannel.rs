//! The OpenID Connect Back-Channel Logout 1.0 receiver (`[backchannel_logout]`):
//! an IdP POSTs `logout_token=…` when a user logs out there (or an admin ends
//! their IdP session); a token that verifies ends the live sessions it names
//! (`LogoutToken::matches`: same issuer, and its `sid` and/or `sub`) at once —
//! no more claims or AWS credentials, SIGHUP then SIGKILL to their processes.
//!
//! Each token is accepted once: its `jti` goes into helperd's replay cache
//! (the one login tokens use, persisted, so a restart forgets nothing; under
//! its own `logout-jti:` keys) until the token could no longer be accepted
//! anyway (`iat` + 600 s + leeway). Only verified tokens reach the cache, so
//! nobody without the IdP's key can fill it.
//!
//! Nothing here can delay a login: its own listener and threads (one accepts,
//! [`WORKERS`] answer, [`QUEUE`] connections wait, more are closed at once),
//! one deadline per connection, a capped body; key refreshes are the
//! rate-limited, non-blocking ones of the public socket.

mod http;

use crate::dispatch::Services;
use crate::log::{error, info, limited_warning, warning};
use http::{Answer, Conn, Request, Tls};
use oidc_core::{clean, CacheDir, Response};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Threads answering requests.
pub const WORKERS: usize = 2;
/// Accepted connections waiting for a worker; beyond, new ones are closed.
pub const QUEUE: usize = 16;

/// Bind the configured listener and start its threads. `Ok(None)`: not configured.
pub fn start(svc: &Arc<Services>) -> Result<Option<SocketAddr>, String> {
    let b = &svc.keys.config().backchannel_logout;
    let Some(addr) = b.listen_addr() else { return Ok(None) };
    let tls = match b.tls() {
        Some((cert, key)) => Some(Tls::open(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(addr).map_err(|e| format!("back-channel logout: cannot listen on {addr}: {e}"))?;
    serve(listener, tls, Arc::clone(svc))
}

/// Serve `listener` (bound by the caller: tests use port 0) on threads.
fn serve(listener: TcpListener, tls: Option<Tls>, svc: Arc<Services>) -> Result<Option<SocketAddr>, String> {
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (tx, rx) = sync_channel::<TcpStream>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let tls = tls.map(Arc::new);
    for n in 0..WORKERS {
        let (rx, svc, tls) = (Arc::clone(&rx), Arc::clone(&svc), tls.clone());
        std::thread::Builder::new()
            .name(format!("helperd-bcl-{n}"))
            .spawn(move || work(&rx, &svc, tls.as_deref()))
            .map_err(|e| format!("starting the back-channel logout workers: {e}"))?;
    }
    std::thread::Builder::new()
        .name("helperd-bcl-accept".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if let Err(TrySendError::Full(c)) = tx.try_send(conn) {
                    let peer = c.peer_addr().map_or("?".into(), |a| a.ip().to_string());
                    limited_warning!(
                        "bcl-busy",
                        "back-channel logout: {QUEUE} connections wait; closed one from {peer}"
                    );
                }
            }
        })
        .map_err(|e| format!("starting the back-channel logout listener: {e}"))?;
    info!(
        "back-channel logout: listening on {} {local}{}",
        if tls.is_some() { "https://" } else { "http://" },
        svc.keys.config().backchannel_logout.path
    );
    Ok(Some(local))
}

fn work(rx: &Mutex<Receiver<TcpStream>>, svc: &Services, tls: Option<&Tls>) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(conn) = next else { return };
        let deadline = Instant::now() + http::DEADLINE;
        let peer = conn.peer_addr().map_or("?".into(), |a| a.ip().to_string());
        let _ = conn.set_nodelay(true);
        match tls {
            None => {
                let mut c = conn;
                exchange(svc, &mut c, &peer, deadline);
            }
            Some(t) => match rustls::ServerConnection::new(t.config()) {
                Ok(sc) => {
                    let mut c = rustls::StreamOwned::new(sc, conn);
                    exchange(svc, &mut c, &peer, deadline);
                    // Say goodbye without waiting for the peer's.
                    c.conn.send_close_notify();
                    while c.conn.wants_write() && c.conn.write_tls(&mut c.sock).is_ok_and(|n| n > 0) {}
                }
                Err(e) => error!("back-channel logout: TLS: {e}"),
            },
        }
    }
}

fn exchange<C: Conn>(svc: &Services, c: &mut C, peer: &str, deadline: Instant) {
    let answer = match http::read_request(c, deadline) {
        Ok(req) => route(svc, &req, peer),
        Err(a) => {
            limited_warning!(
                &format!("bcl-refused:{peer}"),
                "back-channel logout refused from {peer}: {} {}",
                a.status,
                a.description.as_deref().unwrap_or("")
            );
            a
        }
    };
    http::send(c, &answer, deadline);
}

/// A request to an answer: the path, method and form checked, then the token.
fn route(svc: &Services, req: &Request, peer: &str) -> Answer {
    let path = &svc.keys.config().backchannel_logout.path;
    let bad = |a: Answer| {
        limited_warning!(
            &format!("bcl-refused:{peer}"),
            "back-channel logout refused from {peer}: {} {}",
            a.status,
            clean(a.description.as_deref().unwrap_or(""))
        );
        a
    };
    if req.path != *path {
        return bad(Answer::error(404, format!("no such path (the logout endpoint is {path})")));
    }
    if req.method != "POST" {
        return bad(Answer::error(405, "use POST"));
    }
    let form = req.content_type.as_deref().and_then(|t| t.split(';').next()).map(str::trim);
    if !form.is_some_and(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
        return bad(Answer::error(400, "Content-Type must be application/x-www-form-urlencoded"));
    }
    let tokens: Vec<String> =
        form_urlencoded::parse(&req.body).filter(|(k, _)| k == "logout_token").map(|(_, v)| v.into_owned()).collect();
    match tokens.as_slice() {
        [t] => match receive(svc, t, peer) {
            Ok(()) => Answer::ok(),
            Err(why) => Answer::error(400, why),
        },
        [] => bad(Answer::error(400, "no logout_token parameter")),
        _ => bad(Answer::error(400, "more than one logout_token parameter")),
    }
}

/// Verify one logout token, record its one use, end the sessions it names.
/// `Err`: why it was refused (logged here; the IdP is told).
pub fn receive(svc: &Services, token: &str, peer: &str) -> Result<(), String> {
    let cfg = svc.keys.config();
    let now = svc.clock.now();
    let mut refresh = |iss: &str| match svc.keys.refresh_on_demand(iss, false) {
        Response::Refreshed { ok: true, detail, .. } => Ok(detail),
        Response::Refreshed { detail, .. } => Err(detail),
        Response::Error { message } => Err(message),
        _ => Err("unexpected answer".into()),
    };
    let out = oidc_core::verify_logout_token_with(
        cfg,
        token,
        now,
        &mut CacheDir { dir: &cfg.helperd.cache_dir, refresh: &mut refresh },
    );
    let shown = |v: &Option<String>| v.as_deref().map_or("-".into(), clean);
    let t = match &out.result {
        Ok(t) => t,
        Err(e) => {
            limited_warning!(
                &format!("bcl-refused:{peer}"),
                "back-channel logout refused code={} from {peer} issuer={} sub={} jti={}: {}",
                e.code(),
                shown(&out.issuer),
                shown(&out.sub),
                shown(&out.jti),
                out.reason()
            );
            return Err(format!("{}: {e}", e.code()));
        }
    };
    let jti = clean(&t.jti);
    let until = t.accepted_until(cfg.leeway(&t.issuer));
    if let Err(why) = svc.replay.reserve(&t.issuer, &t.replay_id(), until, now) {
        limited_warning!(
            &format!("bcl-refused:{peer}"),
            "back-channel logout refused code=replayed from {peer} issuer={} {} jti={jti}: {why}",
            t.issuer,
            t.who()
        );
        return Err(format!("replayed: logout token {jti} was already received"));
    }
    // Sessions whose ID token carried no sid cannot match a token by sid.
    let sidless = match (&t.sid, &t.sub) {
        (Some(_), Some(sub)) => svc
            .sessions
            .list()
            .iter()
            .filter(|s| s.claims.issuer == t.issuer && s.claims.sub == *sub && s.claims.sid.is_none())
            .count(),
        _ => 0,
    };
    let ended = svc
        .sessions
        .end(|s| t.matches(&s.claims), |_| format!("back-channel logout by {} ({}, jti {jti})", t.issuer, t.who()));
    svc.aws.forget(&svc.sessions.ids());
    // Made durable after the sessions ended: a failed write (logged) costs
    // only the record across a restart.
    let _ = svc.replay.commit(&t.issuer, &t.replay_id());
    if ended.is_empty() {
        info!("back-channel logout issuer={} {} jti={jti} from {peer}: no live session matches", t.issuer, t.who());
    } else {
        let ids: Vec<String> = ended.iter().map(u64::to_string).collect();
        warning!(
            "back-channel logout issuer={} {} jti={jti} from {peer}: ended session(s) {}",
            t.issuer,
            t.who(),
            ids.join(",")
        );
    }
    if sidless > 0 {
        warning!(
            "back-channel logout issuer={} {} jti={jti}: {sidless} session(s) of this sub kept: their ID token \
             carried no sid (have the IdP put sid in ID tokens, or send logout tokens by sub)",
            t.issuer,
            t.who()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;

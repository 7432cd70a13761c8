//! The JWKS cache: fetch each issuer's discovery document and JWKS, write them
//! by atomic rename, refresh on a TTL (Cache-Control max-age within bounds),
//! and on demand when a token carried an unknown kid — at most once per issuer
//! per `jwks_refresh_min_interval_secs`, however many requests arrive.

use crate::atomic;
use crate::clock::unix_now;
use crate::fetch::Transport;
use crate::log::{info, warning};
use oidc_core::{jwks_cache_path, read_jwks_cache, CacheFile, Jwks, JWKS_CACHE_VERSION};
use oidc_core::{Config, Issuer};
use oidc_core::{IssuerStatus, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    last_attempt: Option<Instant>,
    fetched_at: Option<i64>,
    expires_at: Option<i64>,
    keys: usize,
    fetches: u64,
    rate_limited: u64,
    last_error: Option<String>,
}

pub struct KeyCache {
    cfg: Config,
    transport: Box<dyn Transport>,
    states: HashMap<String, Mutex<State>>,
}

impl KeyCache {
    /// Starts from what is already cached on disk (a restart does not refetch fresh keys).
    pub fn new(cfg: Config, transport: Box<dyn Transport>) -> KeyCache {
        let mut states = HashMap::new();
        for iss in &cfg.issuers {
            let mut st = State::default();
            if let Ok((file, jwks)) = read_jwks_cache(&cfg.helperd.cache_dir, &iss.url) {
                st.fetched_at = Some(file.fetched_at);
                st.expires_at = Some(file.expires_at);
                st.keys = jwks.keys.len();
            }
            states.insert(iss.url.clone(), Mutex::new(st));
        }
        KeyCache { cfg, transport, states }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.cfg.helperd.jwks_refresh_min_interval_secs)
    }

    /// A token carried an unknown kid: fetch now unless fetched within the
    /// window — or at once when root asks with `force` (`helperd refresh --force`).
    pub fn refresh_on_demand(&self, issuer: &str, force: bool) -> Response {
        let (Some(icfg), Some(st)) = (self.cfg.issuer(issuer), self.states.get(issuer)) else {
            return Response::Error { message: format!("issuer not configured: {}", oidc_core::clean(issuer)) };
        };
        // Never queue behind a fetch already under way (anyone may start one):
        // say so at once; root's `--force` waits for its own.
        let mut st = if force {
            st.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match st.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Response::Refreshed {
                        fetched: false,
                        ok: true,
                        detail: "a fetch of this issuer's keys is under way".into(),
                    };
                }
            }
        };
        if let Some(t) = st.last_attempt.filter(|t| !force && t.elapsed() < self.window()) {
            st.rate_limited += 1;
            // Say what that last fetch found: "rate-limited" alone would hide an IdP outage.
            let last = match &st.last_error {
                Some(e) => format!(" (it failed: {e})"),
                None => String::new(),
            };
            return Response::Refreshed {
                fetched: false,
                ok: st.last_error.is_none(),
                detail: format!(
                    "rate-limited: last fetch {}s ago{last}, at most one per {}s",
                    t.elapsed().as_secs(),
                    self.window().as_secs()
                ),
            };
        }
        match self.fetch(icfg, &mut st) {
            Ok(d) => Response::Refreshed { fetched: true, ok: true, detail: d },
            Err(e) => Response::Refreshed { fetched: true, ok: false, detail: e },
        }
    }

    /// Refresh every issuer whose cache is missing or past its TTL. Failed
    /// fetches are retried no faster than the rate-limit window.
    pub fn refresh_due(&self) {
        let now = unix_now();
        for icfg in &self.cfg.issuers {
            let Some(st) = self.states.get(&icfg.url) else {
                continue;
            };
            let Ok(mut st) = st.try_lock() else { continue };
            let expired = st.expires_at.is_none_or(|e| now >= e);
            let may_try = st.last_attempt.is_none_or(|t| t.elapsed() >= self.window());
            if expired && may_try {
                let _ = self.fetch(icfg, &mut st);
            }
        }
    }

    /// Seconds until the next issuer is due (for the refresher's sleep), bounded.
    pub fn next_due_in(&self) -> Duration {
        let now = unix_now();
        let soonest = self
            .states
            .values()
            .filter_map(|s| s.lock().ok().map(|s| s.expires_at.map_or(0, |e| (e - now).max(0))))
            .min()
            .unwrap_or(60);
        Duration::from_secs(u64::try_from(soonest).unwrap_or(0).clamp(1, 60))
    }

    fn fetch(&self, icfg: &Issuer, st: &mut State) -> Result<String, String> {
        st.last_attempt = Some(Instant::now());
        st.fetches += 1;
        match self.fetch_inner(icfg) {
            Ok((file, nkeys)) => {
                st.fetched_at = Some(file.fetched_at);
                st.expires_at = Some(file.expires_at);
                st.keys = nkeys;
                st.last_error = None;
                let d = format!("{nkeys} keys, valid for {}s", file.expires_at - file.fetched_at);
                info!("jwks refreshed issuer={} {d}", icfg.url);
                Ok(d)
            }
            Err(e) => {
                warning!("jwks refresh failed issuer={}: {e}", icfg.url);
                st.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn get_json(&self, url: &str) -> Result<(Value, Option<u64>), String> {
        let f = self.transport.get(url)?;
        let v = serde_json::from_slice(&f.body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        Ok((v, f.max_age))
    }

    fn fetch_inner(&self, icfg: &Issuer) -> Result<(CacheFile, usize), String> {
        let h = &self.cfg.helperd;
        let jwks_uri = match &icfg.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let d = crate::discovery::discover(self.transport.as_ref(), &icfg.url).map_err(|e| e.to_string())?;
                let u = d.endpoint("jwks_uri")?;
                let name = jwks_cache_path(&h.cache_dir, &icfg.url);
                let p = h.cache_dir.join("discovery").join(name.file_name().unwrap_or_default());
                let bytes = serde_json::to_vec(&d.doc).map_err(|e| e.to_string())?;
                atomic::write(&p, &bytes, 0o644).map_err(|e| format!("writing {}: {e}", p.display()))?;
                u
            }
        };
        let (jwks_value, max_age) = self.get_json(&jwks_uri)?;
        let jwks = Jwks::from_idp(&jwks_value).map_err(|e| format!("{jwks_uri}: {e}"))?;
        for s in &jwks.skipped {
            warning!("jwks issuer={} skipped {s}", icfg.url);
        }
        if jwks.keys.is_empty() {
            return Err(format!("{jwks_uri}: no usable signing keys (cache left as it was)"));
        }
        let ttl = max_age.unwrap_or(h.jwks_ttl_default_secs).clamp(h.jwks_ttl_min_secs, h.jwks_ttl_max_secs);
        let now = unix_now();
        let file = CacheFile {
            v: JWKS_CACHE_VERSION,
            issuer: icfg.url.clone(),
            jwks_uri,
            fetched_at: now,
            expires_at: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            // Only the keys accepted here: one helperd refused is never selectable.
            jwks: serde_json::json!({ "keys": jwks.keys.iter().map(|k| k.to_jwk()).collect::<Vec<_>>() }),
        };
        let path = jwks_cache_path(&h.cache_dir, &icfg.url);
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        atomic::write(&path, &bytes, 0o644).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok((file, jwks.keys.len()))
    }

    pub fn status(&self) -> Vec<IssuerStatus> {
        self.cfg
            .issuers
            .iter()
            .filter_map(|i| {
                let st = self.states.get(&i.url)?.lock().ok()?;
                Some(IssuerStatus {
                    issuer: i.url.clone(),
                    keys: st.keys,
                    fetched_at: st.fetched_at,
                    expires_at: st.expires_at,
                    fetches: st.fetches,
                    rate_limited: st.rate_limited,
                    last_error: st.last_error.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

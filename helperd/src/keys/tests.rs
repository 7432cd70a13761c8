use super::*;
use crate::fetch::Fetched;
use crate::testing::{jwks, RSA_N as N};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Serves a discovery document and a JWKS; counts JWKS requests.
struct Fake {
    issuer: String,
    jwks: std::sync::Mutex<String>,
    max_age: Option<u64>,
    hits: Arc<AtomicU64>,
}

impl Transport for Fake {
    fn get(&self, url: &str) -> Result<Fetched, String> {
        if url.ends_with("/.well-known/openid-configuration") {
            let doc = serde_json::json!({"issuer": self.issuer, "jwks_uri": format!("{}/jwks", self.issuer)});
            return Ok(Fetched { body: doc.to_string().into_bytes(), max_age: None, date: None });
        }
        self.hits.fetch_add(1, Ordering::SeqCst);
        Ok(Fetched { body: self.jwks.lock().unwrap().clone().into_bytes(), max_age: self.max_age, date: None })
    }
}

fn setup(
    tag: &str,
    window: u64,
    max_age: Option<u64>,
    discovery_issuer: &str,
) -> (KeyCache, Arc<AtomicU64>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("helperd-keys-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "version = 1\n[helperd]\ncache_dir = \"{}\"\njwks_refresh_min_interval_secs = {window}\njwks_ttl_min_secs = 60\njwks_ttl_max_secs = 600\n\
         [[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n",
        dir.display()
    );
    let cfg = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let fake =
        Fake { issuer: discovery_issuer.into(), jwks: std::sync::Mutex::new(jwks("k1")), max_age, hits: hits.clone() };
    (KeyCache::new(cfg, Box::new(fake)), hits, dir)
}

#[test]
fn on_demand_refresh_is_rate_limited_under_concurrency() {
    let (cache, hits, dir) = setup("rl", 3600, None, "https://idp.test");
    let cache = Arc::new(cache);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let c = cache.clone();
            std::thread::spawn(move || {
                (0..125).map(|_| c.refresh_on_demand("https://idp.test", false)).collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<Response> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(all.len(), 1000);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch for 1000 requests");
    let fetched = all.iter().filter(|r| matches!(r, Response::Refreshed { fetched: true, ok: true, .. })).count();
    assert_eq!(fetched, 1);
    let st = &cache.status()[0];
    // The other 999 were answered at once: rate-limited, or "a fetch is under way".
    assert_eq!((st.fetches, st.keys), (1, 1));
    let busy =
        all.iter().filter(|r| matches!(r, Response::Refreshed { detail, .. } if detail.contains("under way"))).count();
    assert_eq!(st.rate_limited as usize + busy, 999);
    let (file, j) = read_jwks_cache(&dir, "https://idp.test").unwrap();
    assert_eq!(j.keys[0].kid.as_deref(), Some("k1"));
    assert_eq!(file.expires_at - file.fetched_at, 600, "default TTL 3600 clamped to max 600");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn max_age_is_honoured_within_bounds_and_unknown_issuers_refused() {
    let (cache, _hits, dir) = setup("ttl", 0, Some(5), "https://idp.test");
    assert!(matches!(cache.refresh_on_demand("https://idp.test", false), Response::Refreshed { ok: true, .. }));
    let (file, _) = read_jwks_cache(&dir, "https://idp.test").unwrap();
    assert_eq!(file.expires_at - file.fetched_at, 60, "max-age 5 raised to the 60 s minimum");
    assert!(matches!(cache.refresh_on_demand("https://other", false), Response::Error { .. }));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn discovery_issuer_mismatch_is_an_error_and_keeps_no_cache() {
    let (cache, hits, dir) = setup("mismatch", 0, None, "https://evil.test");
    match cache.refresh_on_demand("https://idp.test", false) {
        Response::Refreshed { ok: false, detail, .. } => assert!(detail.contains("issuer mismatch"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert!(read_jwks_cache(&dir, "https://idp.test").is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_jwks_without_usable_keys_leaves_the_old_cache() {
    let (cache, _hits, dir) = setup("garbage", 0, None, "https://idp.test");
    assert!(matches!(cache.refresh_on_demand("https://idp.test", false), Response::Refreshed { ok: true, .. }));
    // Swap in garbage keys: the refresh fails and the cached k1 survives.
    let fake = Fake {
        issuer: "https://idp.test".into(),
        jwks: std::sync::Mutex::new(r#"{"keys":[{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}]}"#.into()),
        max_age: None,
        hits: Arc::new(AtomicU64::new(0)),
    };
    let cache2 = KeyCache::new(cache.config().clone(), Box::new(fake));
    assert_eq!(cache2.status()[0].keys, 1, "state loaded from the cache on start");
    assert!(matches!(cache2.refresh_on_demand("https://idp.test", false), Response::Refreshed { ok: false, .. }));
    assert_eq!(read_jwks_cache(&dir, "https://idp.test").unwrap().1.keys[0].kid.as_deref(), Some("k1"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 12 (9): the cache holds only the keys helperd accepted (a key it
/// refused is never selectable by the module); root can force a refresh
/// inside the rate-limit window.
#[test]
fn only_accepted_keys_are_cached_and_force_skips_the_rate_limit() {
    let (cache, hits, dir) = setup("accepted", 3600, None, "https://idp.test");
    let fake = Fake {
        issuer: "https://idp.test".into(),
        jwks: std::sync::Mutex::new(
            serde_json::json!({"keys": [
                {"kty": "RSA", "kid": "good", "n": N, "e": "AQAB"},
                {"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"},
                {"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
                {"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB"}
            ]})
            .to_string(),
        ),
        max_age: None,
        hits: hits.clone(),
    };
    let cache = KeyCache::new(cache.config().clone(), Box::new(fake));
    assert!(matches!(cache.refresh_on_demand("https://idp.test", false), Response::Refreshed { ok: true, .. }));
    let (file, j) = read_jwks_cache(&dir, "https://idp.test").unwrap();
    let kids: Vec<_> = j.keys.iter().filter_map(|k| k.kid.clone()).collect();
    assert_eq!(kids, ["good"], "raw cache: {}", file.jwks);
    assert!(!file.jwks.to_string().contains("short") && !file.jwks.to_string().contains("offcurve"));
    assert!(matches!(cache.refresh_on_demand("https://idp.test", false), Response::Refreshed { fetched: false, .. }));
    assert!(matches!(cache.refresh_on_demand("https://idp.test", true), Response::Refreshed { fetched: true, .. }));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    std::fs::remove_dir_all(dir).unwrap();
}

//! Issue 12 (10): tokens and AWS secrets that cross the helperd socket leave
//! no copy in freed memory. A counting allocator looks at every block freed
//! while armed for the secret's bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use oidc_core::Secret;
use oidc_core::{read_frame, write_frame, Request, Response};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MARK: &[u8] = b"S3CR3T-MARK-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

struct Watch;

// SAFETY: every method passes its arguments unchanged to `System` and returns
// its result; the hooks before dealloc/realloc only read the live old block.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if ARMED.load(Ordering::SeqCst) && l.size() >= MARK.len() {
            // SAFETY: the block is live until System.dealloc below.
            let b = unsafe { std::slice::from_raw_parts(p, l.size()) };
            if b.windows(MARK.len()).any(|w| w == MARK) {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if ARMED.load(Ordering::SeqCst) && l.size() >= MARK.len() {
            // SAFETY: the old block is live until System.realloc moves it.
            let b = unsafe { std::slice::from_raw_parts(p, l.size()) };
            if b.windows(MARK.len()).any(|w| w == MARK) {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Watch = Watch;

fn secret() -> Secret {
    Secret::new(String::from_utf8(MARK.to_vec()).unwrap())
}

#[test]
fn frames_with_secrets_are_wiped() {
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let d = Instant::now() + Duration::from_secs(5);
    ARMED.store(true, Ordering::SeqCst);
    {
        let resp = Response::AwsCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: secret(),
            session_token: secret(),
            expiration: "2030-01-01T00:00:00Z".into(),
        };
        write_frame(&mut a, &resp, d).unwrap();
        let got: Response = read_frame(&mut b, d).unwrap();
        assert!(
            matches!(&got, Response::AwsCredentials { secret_access_key, .. } if secret_access_key.expose().as_bytes() == MARK)
        );
        let claims = oidc_core::SessionClaims {
            issuer: "https://idp".into(),
            sub: "s".into(),
            account: "alice".into(),
            identity: "alice".into(),
            groups: vec![],
            idp_groups: vec![],
            jti: None,
            sid: None,
            exp: 0,
            iat: 0,
            auth_time: None,
            acr: None,
            verified_at: 0,
            identity_id: String::new(),
        };
        let req =
            Request::Login { event: None, claims, web_token: Some(secret()), role_groups: vec![], replay_id: None };
        write_frame(&mut a, &req, d).unwrap();
        let got: Request = read_frame(&mut b, d).unwrap();
        drop(got);
    }
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(FOUND.load(Ordering::SeqCst), 0, "freed blocks held the secret");
}

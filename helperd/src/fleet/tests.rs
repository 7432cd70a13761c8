//! The fleet poller over a scripted transport and a fake clock: the signed
//! request, 304, a good list applied (added, removed, sessions ended for new
//! locks only), and every bad list or failed fetch leaving the last good
//! list in force.

use super::*;
use crate::clock::FakeClock;
use crate::testing::{json, temp_dir, Reply, ScriptedTransport};
use oidc_core::LockTarget;
use std::sync::Mutex;

const T0: i64 = 1_800_000_000;
const IMDS: &str = "http://169.254.169.254";
const URL: &str = "http://127.0.0.1:9/fleet-locks/prod/locks.json";

struct World {
    fleet: Fleet,
    locks: Locks,
    t: Arc<ScriptedTransport>,
    clock: Arc<FakeClock>,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(dir: &Path, locks: &str) -> Config {
    let text = format!(
        "version = 1\n[helperd]\nstate_dir = \"{d}\"\ncache_dir = \"{d}\"\n\
         [[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n[locks]\n{locks}",
        d = dir.display()
    );
    Config::parse(&text, Path::new("t.toml")).unwrap()
}

fn world(tag: &str) -> World {
    let dir = temp_dir(&format!("fleet-{tag}"));
    let cfg = config(
        &dir,
        "fleet_list = \"s3://fleet-locks/prod/locks.json\"\ns3_endpoint = \"http://127.0.0.1:9\"\nmax_list_bytes = 400\nmax_entries = 5\n",
    );
    let (t, clock) = (ScriptedTransport::new(), FakeClock::at(T0));
    let fleet = Fleet::new(&cfg, t.clone(), clock.clone()).unwrap();
    World { fleet, locks: Locks::open(&dir), t, clock, dir }
}

/// IMDSv2: token, role name, the role's credentials (valid for an hour).
fn expect_imds(t: &ScriptedTransport) {
    let creds = json(serde_json::json!({
        "AccessKeyId": "ASIAINSTANCE", "SecretAccessKey": "secret", "Token": "session-token",
        "Expiration": oidc_core::format_rfc3339(T0 + 3600),
    }));
    t.expect("PUT", &format!("{IMDS}/latest/api/token"), Reply::Http(200, "tok".into()))
        .expect(
            "GET",
            &format!("{IMDS}/latest/meta-data/iam/security-credentials/"),
            Reply::Http(200, "host-role".into()),
        )
        .expect("GET", &format!("{IMDS}/latest/meta-data/iam/security-credentials/host-role"), Reply::Http(200, creds));
}

fn list(entries: &str) -> String {
    format!("{{\"version\":1,\"locks\":[{entries}]}}")
}

fn ok(etag: &str, body: &str) -> Reply {
    Reply::Headers(200, vec![("etag".into(), etag.into())], body.into())
}

fn names(l: &Locks) -> Vec<String> {
    l.list().iter().map(|l| format!("{} {}", l.source, l.target)).collect()
}

/// Records the locks whose sessions the poller asked to end.
#[derive(Default)]
struct Ended(Mutex<Vec<String>>);

impl Ended {
    fn end(&self) -> impl Fn(&Lock) -> Vec<u64> + '_ {
        |l| {
            self.0.lock().unwrap().push(l.target.to_string());
            vec![7]
        }
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[test]
fn the_get_is_signed_with_the_instance_role_and_304_changes_nothing() {
    let mut w = world("signed");
    expect_imds(&w.t);
    w.t.expect_with(
        "GET",
        URL,
        |c| {
            let auth = c.header("authorization").unwrap_or("");
            let want = "AWS4-HMAC-SHA256 Credential=ASIAINSTANCE/20270115/us-east-1/s3/aws4_request";
            if !auth.starts_with(want) || !auth.contains("x-amz-content-sha256") {
                return Err(format!("authorization {auth:?}"));
            }
            if c.header("x-amz-security-token") != Some("session-token") {
                return Err("no session token".into());
            }
            let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
            if c.header("x-amz-content-sha256") != Some(empty) || c.header("x-amz-date").is_none() {
                return Err("no payload hash or date".into());
            }
            if c.header("if-none-match").is_some() {
                return Err("If-None-Match on the first fetch".into());
            }
            Ok(())
        },
        ok("\"e1\"", &list(r#"{"name":"alice","reason":"left"}"#)),
    );
    // The next poll sends the ETag (signed) and the cached credentials: no IMDS call.
    w.t.expect_with(
        "GET",
        URL,
        |c| match (c.header("if-none-match"), c.header("authorization")) {
            (Some("\"e1\""), Some(a)) if a.contains("if-none-match") => Ok(()),
            other => Err(format!("{other:?}")),
        },
        Reply::Headers(304, vec![], String::new()),
    );
    let ended = Ended::default();
    let p = w.fleet.poll(&w.locks, &ended.end());
    assert_eq!(p, Polled::Applied { added: 1, removed: 0, ended: 1 });
    assert_eq!(ended.take(), ["name alice"]);
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(w.fleet.poll(&w.locks, &ended.end()), Polled::Unchanged);
    assert!(ended.take().is_empty());
    assert_eq!(names(&w.locks), ["fleet name alice"]);
    let st = Status::read(&w.dir).unwrap();
    assert_eq!((st.last_ok, st.last_error, st.entries), (Some(T0 + 60), None, 1));
    w.t.done();
}

#[test]
fn entries_added_and_removed_end_only_new_locks_and_leave_roots_alone() {
    let mut w = world("apply");
    let root = Lock {
        target: LockTarget::Name { name: "zed".into() },
        by: "root".into(),
        at: 1,
        reason: String::new(),
        source: crate::locks::LOCAL.into(),
        via: None,
    };
    w.locks.lock(root).unwrap();
    expect_imds(&w.t);
    w.t.expect("GET", URL, ok("\"e1\"", &list(r#"{"name":"alice"},{"issuer":"https://idp.test","sub":"u-2"}"#)));
    w.t.expect("GET", URL, ok("\"e2\"", &list(r#"{"issuer":"https://idp.test","sub":"u-2"},{"name":"carol"}"#)));
    let ended = Ended::default();
    assert_eq!(w.fleet.poll(&w.locks, &ended.end()), Polled::Applied { added: 2, removed: 0, ended: 2 });
    assert_eq!(ended.take(), ["name alice", "identity https://idp.test sub u-2"]);
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(w.fleet.poll(&w.locks, &ended.end()), Polled::Applied { added: 1, removed: 1, ended: 1 });
    assert_eq!(ended.take(), ["name carol"], "only the new entry's sessions end");
    assert_eq!(names(&w.locks), ["local name zed", "fleet identity https://idp.test sub u-2", "fleet name carol"]);
    let kept = w.locks.list().into_iter().find(|l| l.target.to_string().contains("u-2")).unwrap();
    assert_eq!((kept.at, kept.by.as_str()), (T0, "fleet list s3://fleet-locks/prod/locks.json"), "first seen");
    // Persisted: a restarted helperd (or the module with helperd down) holds them.
    assert_eq!(names(&Locks::open(&w.dir)), names(&w.locks));
    w.t.done();
}

#[test]
fn a_bad_list_or_a_failed_fetch_keeps_the_last_good_list() {
    let mut w = world("bad");
    expect_imds(&w.t);
    w.t.expect("GET", URL, ok("\"e1\"", &list(r#"{"name":"alice"}"#)));
    let ended = Ended::default();
    assert!(matches!(w.fleet.poll(&w.locks, &ended.end()), Polled::Applied { added: 1, .. }));
    let good = names(&w.locks);
    let too_many = list(r#"{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"},{"name":"e"},{"name":"f"}"#);
    let bad = [
        ok("\"e2\"", "{\"version\":1,\"locks\":[{\"name\":\"bob\"},"),
        ok("\"e3\"", &list(r#"{"name":"bob","extra":true}"#)),
        ok("\"e4\"", &too_many),
        ok("\"e5\"", &format!("{}{}", list(r#"{"name":"bob"}"#), " ".repeat(400))),
        Reply::Headers(403, vec![], "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>".into()),
        Reply::Headers(404, vec![], "<Error><Code>NoSuchKey</Code></Error>".into()),
        Reply::Fail("connection refused".into()),
    ];
    let whys =
        ["not a lock list", "unknown field", "max_entries", "larger than", "AccessDenied", "NoSuchKey", "refused"];
    for (i, (reply, why)) in bad.into_iter().zip(whys).enumerate() {
        // Every retry still asks with the good list's ETag.
        w.t.expect_with(
            "GET",
            URL,
            |c| (c.header("if-none-match") == Some("\"e1\"")).then_some(()).ok_or("not the good ETag".into()),
            reply,
        );
        w.clock.advance(Duration::from_secs(60));
        match w.fleet.poll(&w.locks, &ended.end()) {
            Polled::Failed(e) => assert!(e.contains(why), "{i}: {e}"),
            other => panic!("{i}: {other:?}"),
        }
        assert_eq!(names(&w.locks), good, "{i}: the last good list stays");
    }
    assert!(ended.take().len() == 1, "only alice's, at the first poll");
    let st = Status::read(&w.dir).unwrap();
    assert_eq!(st.last_ok, Some(T0), "the last good fetch");
    assert!(st.last_error.unwrap().contains("refused"));
    assert_eq!(w.fleet.next_in(), Duration::from_secs(480), "backed off to 8 x poll_secs");
    // Fixed at the source: applied at the next poll, and the backoff resets.
    w.t.expect("GET", URL, ok("\"e9\"", &list("")));
    assert_eq!(w.fleet.poll(&w.locks, &ended.end()), Polled::Applied { added: 0, removed: 1, ended: 0 });
    assert!(names(&w.locks).is_empty(), "an empty list lifts every fleet lock");
    assert_eq!(w.fleet.next_in(), Duration::from_secs(60));
    w.t.done();
}

#[test]
fn expired_instance_credentials_are_fetched_again() {
    let mut w = world("creds");
    expect_imds(&w.t);
    w.t.expect("GET", URL, ok("\"e1\"", &list("")));
    let none = Ended::default();
    w.fleet.poll(&w.locks, &none.end());
    // Within CREDS_MARGIN_SECS of their expiry: IMDS again.
    w.clock.advance(Duration::from_secs(3400));
    expect_imds(&w.t);
    w.t.expect("GET", URL, Reply::Headers(304, vec![], String::new()));
    assert_eq!(w.fleet.poll(&w.locks, &none.end()), Polled::Unchanged);
    w.t.done();
}

#[test]
fn fleet_locks_are_lifted_when_no_list_is_configured() {
    let dir = temp_dir("fleet-unconfigured");
    let locks = Locks::open(&dir);
    let fl = |n: &str, source: &str| Lock {
        target: LockTarget::Name { name: n.into() },
        by: "x".into(),
        at: 1,
        reason: String::new(),
        source: source.into(),
        via: None,
    };
    locks.replace_source(SOURCE, vec![fl("alice", SOURCE)]).unwrap();
    locks.lock(fl("bob", crate::locks::LOCAL)).unwrap();
    locks.lock(fl("carol", crate::ssf::SOURCE)).unwrap();
    let with = config(&dir, "fleet_list = \"s3://fleet-locks/k\"\n");
    lift_if_unconfigured(&with, &locks);
    assert_eq!(locks.list().len(), 2, "configured: kept until the first poll; no stream: ssf's lifted");
    lift_if_unconfigured(&config(&dir, ""), &locks);
    assert_eq!(names(&locks), ["local name bob"]);
    assert!(Fleet::new(&config(&dir, ""), ScriptedTransport::new(), FakeClock::at(T0)).is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

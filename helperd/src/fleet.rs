//! The fleet lock list: helperd polls an S3 object (`[locks] fleet_list`)
//! with the instance role (IMDSv2 credentials, a SigV4-signed GetObject with
//! `If-None-Match` on the last ETag) on its own thread, and makes the list's
//! entries the locks of source `fleet` (`Locks::replace_source`): new ones end
//! their live sessions, removed ones are lifted. A list that cannot be
//! fetched or parsed changes nothing: the last good list stays in force
//! (persisted in `locks.json`), with a warning every `stale_warn_secs`.
//! `state_dir/fleet-status.json` records the last attempt and the last good
//! fetch, for `helperd doctor`. No lock is held across the network call.

mod list;
mod s3;
#[cfg(test)]
mod tests;

use crate::aws::Creds;
use crate::clock::Clock;
use crate::fetch::Transport;
use crate::locks::Locks;
use crate::log::{error, info, warning};
use oidc_core::{clean, Config, Lock, LocksSettings};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `source` of the fleet list's locks.
pub const SOURCE: &str = "fleet";
/// The status file in helperd's state dir.
pub const STATUS_FILE: &str = "fleet-status.json";
/// Instance credentials are fetched again when they expire within this.
const CREDS_MARGIN_SECS: i64 = 300;
/// Most targets named in one log line (then "and N more").
const LOGGED: usize = 20;

/// `fleet-status.json`: what `helperd doctor` reads.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// The list's location (`s3://bucket/key`).
    pub list: String,
    /// Unix time of the last poll.
    pub last_attempt: i64,
    /// Unix time of the last poll that got a good list (or a 304).
    pub last_ok: Option<i64>,
    /// Why the last poll failed (none after a good one).
    pub last_error: Option<String>,
    /// Entries of the list in force.
    pub entries: usize,
}

impl Status {
    pub fn read(state_dir: &Path) -> Result<Status, String> {
        let p = state_dir.join(STATUS_FILE);
        let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
    }
}

/// A fetched list's body and ETag.
type Got = (Vec<u8>, Option<String>);

pub struct Fleet {
    list: String,
    url: String,
    region: String,
    cfg: LocksSettings,
    imds_endpoint: String,
    http: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    status_path: PathBuf,
    etag: Option<String>,
    creds: Option<Creds>,
    failures: u32,
    status: Status,
    started: i64,
    last_warned: Option<i64>,
}

/// What one poll did.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled {
    /// 304: the list in force is still the list.
    Unchanged,
    /// A good list: targets added, removed, sessions ended.
    Applied { added: usize, removed: usize, ended: usize },
    /// Nothing changed; why.
    Failed(String),
}

fn shown(targets: &[String]) -> String {
    let mut s = targets.iter().take(LOGGED).cloned().collect::<Vec<_>>().join(", ");
    if targets.len() > LOGGED {
        s.push_str(&format!(" and {} more", targets.len() - LOGGED));
    }
    s
}

impl Fleet {
    /// The poller, if `[locks] fleet_list` is set. `http` should time out
    /// within `locks.fetch_timeout_secs`.
    pub fn new(cfg: &Config, http: Arc<dyn Transport>, clock: Arc<dyn Clock>) -> Option<Fleet> {
        let list = cfg.locks.fleet_list.clone()?;
        let (bucket, key) = oidc_core::parse_s3_url(&list).ok()?;
        let url = s3::object_url(&cfg.locks.s3_endpoint, &cfg.aws.region, &bucket, &key);
        let status_path = cfg.helperd.state_dir.join(STATUS_FILE);
        // The last good fetch survives a restart (the locks do too, in locks.json).
        let last_ok = Status::read(&cfg.helperd.state_dir).ok().filter(|s| s.list == list).and_then(|s| s.last_ok);
        let started = clock.now();
        Some(Fleet {
            status: Status { list: list.clone(), last_ok, ..Status::default() },
            list,
            url,
            region: cfg.aws.region.clone(),
            cfg: cfg.locks.clone(),
            imds_endpoint: cfg.aws.imds_endpoint.clone(),
            http,
            clock,
            status_path,
            etag: None,
            creds: None,
            failures: 0,
            started,
            last_warned: None,
        })
    }

    /// How long to wait before the next poll: `poll_secs`, doubled after each
    /// failure in a row up to 8× (at most 15 minutes, never less than `poll_secs`).
    pub fn next_in(&self) -> Duration {
        let base = self.cfg.poll_secs;
        let backed = base.saturating_mul(1 << self.failures.min(3)).min(900).max(base);
        Duration::from_secs(backed)
    }

    fn credentials(&mut self) -> Result<Creds, String> {
        let now = self.clock.now();
        if let Some(c) = self.creds.as_ref().filter(|c| c.expires_at - now > CREDS_MARGIN_SECS) {
            return Ok(c.clone());
        }
        let c = crate::aws::imds::instance_credentials(self.http.as_ref(), &self.imds_endpoint)
            .map_err(|f| format!("instance role credentials ({}): {}", f.code, f.reason))?;
        self.creds = Some(c.clone());
        Ok(c)
    }

    /// GET the list: `None` when it is unchanged (304), else its body and ETag.
    fn fetch(&mut self) -> Result<Option<Got>, String> {
        let creds = self.credentials()?;
        let mut extra = vec![];
        if let Some(e) = &self.etag {
            extra.push(("if-none-match", e.as_str()));
        }
        let headers = s3::signed_get_headers(&creds, &self.region, &self.url, &extra, self.clock.now())?;
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let resp = self.http.request("GET", &self.url, &h, b"", self.cfg.max_list_bytes)?;
        match resp.status {
            200 => {
                let etag = resp.header("etag").map(str::to_string);
                Ok(Some((resp.body, etag)))
            }
            304 => Ok(None),
            st => {
                let text = String::from_utf8_lossy(&resp.body);
                let code = crate::aws::sts::xml_text(&text, "Code").unwrap_or_default();
                if matches!(code.as_str(), "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired") {
                    self.creds = None;
                }
                let msg = crate::aws::sts::xml_text(&text, "Message").unwrap_or_default();
                Err(format!("S3 HTTP {st} {}: {}", clean(&code), clean(&msg)))
            }
        }
    }

    /// Make a good list the fleet's locks; `end` ends the live sessions of a
    /// new lock (`dispatch::end_locked`).
    fn apply(&mut self, body: &[u8], locks: &Locks, end: &dyn Fn(&Lock) -> Vec<u64>) -> Result<Polled, String> {
        let listed = list::parse(body, self.cfg.max_list_bytes, self.cfg.max_entries)?;
        let now = self.clock.now();
        let before: Vec<Lock> = locks.list().into_iter().filter(|l| l.source == SOURCE).collect();
        let fresh: Vec<Lock> = listed
            .iter()
            .map(|e| Lock {
                at: before.iter().find(|l| l.target == e.target).map_or(now, |l| l.at),
                target: e.target.clone(),
                by: format!("fleet list {}", self.list),
                reason: e.reason.clone(),
                source: SOURCE.into(),
                via: None,
            })
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|b| !fresh.iter().any(|f| f.target == b.target))
            .map(|l| l.target.to_string())
            .collect();
        let new = locks.replace_source(SOURCE, fresh)?;
        self.status.entries = listed.len();
        let ended: usize = new.iter().map(|l| end(l).len()).sum();
        if !new.is_empty() || !removed.is_empty() {
            let added: Vec<String> = new.iter().map(|l| l.target.to_string()).collect();
            warning!(
                "fleet lock list {} applied: {} entries; added {}: [{}]; removed {}: [{}]; {ended} live session(s) ended",
                self.list,
                listed.len(),
                added.len(),
                shown(&added),
                removed.len(),
                shown(&removed)
            );
        }
        Ok(Polled::Applied { added: new.len(), removed: removed.len(), ended })
    }

    /// One poll, start to finish; the status file is written after it.
    pub fn poll(&mut self, locks: &Locks, end: &dyn Fn(&Lock) -> Vec<u64>) -> Polled {
        let now = self.clock.now();
        self.status.last_attempt = now;
        let out = match self.fetch() {
            Ok(None) => Ok(Polled::Unchanged),
            Ok(Some((body, etag))) => self.apply(&body, locks, end).inspect(|_| self.etag = etag),
            Err(e) => Err(e),
        };
        let polled = match out {
            Ok(p) => {
                if self.failures > 0 {
                    info!("fleet lock list {}: fetched again after {} failed poll(s)", self.list, self.failures);
                }
                self.failures = 0;
                self.status.last_ok = Some(now);
                self.status.last_error = None;
                self.last_warned = None;
                p
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                // A new reason is logged at once; the same one every stale_warn_secs.
                if self.status.last_error.as_deref() != Some(e.as_str()) {
                    self.last_warned = None;
                }
                self.status.last_error = Some(e.clone());
                self.warn(now, &e);
                Polled::Failed(e)
            }
        };
        if let Ok(b) = serde_json::to_vec(&self.status) {
            if let Err(e) = crate::atomic::write(&self.status_path, &b, 0o644) {
                error!("fleet lock list: writing {}: {e}", self.status_path.display());
            }
        }
        polled
    }

    /// A failed poll: logged at once the first time (and whenever the reason
    /// changes), then once every `stale_warn_secs` while the list stays out of reach.
    fn warn(&mut self, now: i64, why: &str) {
        let since = self.status.last_ok.unwrap_or(self.started);
        let every = i64::try_from(self.cfg.stale_warn_secs).unwrap_or(i64::MAX);
        let due = match self.last_warned {
            None => true,
            Some(t) => now - t >= every,
        };
        if !due {
            return;
        }
        self.last_warned = Some(now);
        let good = match self.status.last_ok {
            Some(t) => format!("last good fetch {} ({}s ago)", oidc_core::format_rfc3339(t), now - t),
            None => format!("no good fetch since helperd started {}s ago", now - since),
        };
        warning!(
            "fleet lock list {} not applied: {}; {good}; the fleet locks in force stay ({} entries); next try in {}s",
            self.list,
            clean(why),
            self.status.entries,
            self.next_in().as_secs()
        );
    }
}

/// At start: with no `fleet_list` configured, fleet locks left in
/// `locks.json` are lifted (nothing would ever replace them, and `unlock`
/// cannot); with one, the list in force is what the file holds until the
/// first poll.
/// Likewise, with no `[[locks.ssf]]` stream, the locks streams had set.
pub fn lift_if_unconfigured(cfg: &Config, locks: &Locks) {
    let unset = [
        (SOURCE, cfg.locks.fleet_list.is_none(), "locks.fleet_list is not set"),
        (crate::ssf::SOURCE, cfg.locks.ssf.is_empty(), "no [[locks.ssf]] stream is configured"),
    ];
    for (source, gone, why) in unset {
        let n = locks.list().iter().filter(|l| l.source == source).count();
        if !gone || n == 0 {
            continue;
        }
        match locks.replace_source(source, vec![]) {
            Ok(_) => warning!("{why}: {n} {source} lock(s) lifted"),
            Err(e) => error!("{why}, but its {n} {source} lock(s) could not be lifted: {e}"),
        }
    }
}

/// The poller's own thread: nothing on it ever waits for a login or root's
/// request, or makes them wait.
pub fn spawn(svc: Arc<crate::dispatch::Services>, mut fleet: Fleet) -> std::io::Result<()> {
    std::thread::Builder::new().name("helperd-fleet".into()).spawn(move || loop {
        fleet.poll(&svc.locks, &|l| crate::dispatch::end_locked(&svc, l));
        svc.clock.sleep(fleet.next_in());
    })?;
    Ok(())
}

//! `helperd doctor`: one command an operator runs when logins fail. Every
//! check says PASS or FAIL, why, and for a failure how to fix it; the exit
//! code is non-zero if anything failed.

mod clients;
mod fleet;
mod imds;
mod nss_module;
mod sshd;

use crate::fetch::{Http, Transport};
use imds::imds;
use oidc_core::Jwks;
use oidc_core::{ipc_call, Request, Response};
use oidc_core::{Config, ConfigError};
use sshd::sshd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Opts {
    pub sshd_config: PathBuf,
    pub nsswitch: PathBuf,
    pub pam_dir: PathBuf,
    pub services: Vec<String>,
    pub sudoers: PathBuf,
    pub polkit: PathBuf,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            sshd_config: "/etc/ssh/sshd_config".into(),
            nsswitch: "/etc/nsswitch.conf".into(),
            pam_dir: "/etc/pam.d".into(),
            services: vec!["sshd".into(), "sudo".into()],
            sudoers: "/etc/sudoers".into(),
            polkit: "/etc/polkit-1/rules.d".into(),
        }
    }
}

struct Report {
    failed: usize,
}

impl Report {
    fn pass(&mut self, name: &str, detail: &str) {
        println!("[PASS] {name}: {detail}");
    }
    fn fail(&mut self, name: &str, detail: &str, fix: &str) {
        self.failed += 1;
        println!("[FAIL] {name}: {detail}\n       fix: {fix}");
    }
    fn check(&mut self, name: &str, r: Result<String, (String, String)>) {
        match r {
            Ok(d) => self.pass(name, &d),
            Err((d, fix)) => self.fail(name, &d, &fix),
        }
    }
}

type Outcome = Result<String, (String, String)>;

fn fail(detail: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Err((detail.into(), fix.into()))
}

pub fn run(config: &Path, cfg: Result<Config, ConfigError>, o: &Opts) -> i32 {
    let mut r = Report { failed: 0 };
    let cfg = match cfg {
        Ok(c) => {
            r.pass("config", &format!("{} parses ({} issuer(s))", config.display(), c.issuers.len()));
            Some(c)
        }
        Err(e) => {
            r.fail(
                "config",
                &e.to_string(),
                "edit the file at the line and key named above (docs/configuration.md, pam-oidc.toml(5))",
            );
            None
        }
    };
    if let Some(cfg) = &cfg {
        let http = Http::new(Duration::from_secs(cfg.helperd.fetch_timeout_secs));
        for iss in &cfg.issuers {
            issuer_checks(&mut r, &http, cfg, iss);
        }
    }
    if let Some(cfg) = &cfg {
        r.check("id key", id_key(cfg));
        r.check("pre-login", prelogin(cfg));
        r.check("privileged groups", privileged_groups(cfg, &o.sudoers, &o.polkit));
        r.check("imds", imds(cfg));
        r.check("locks", locks(cfg));
        if let Some(o) = fleet::fleet_list(cfg, crate::clock::unix_now()) {
            r.check("fleet lock list", o);
        }
        if let Some(o) = fleet::ssf_tokens(cfg) {
            r.check("shared signals", o);
        }
    }
    r.check("sshd", sshd(&o.sshd_config));
    r.check("nsswitch", nsswitch(&o.nsswitch));
    for svc in &o.services {
        r.check(&format!("pam.d/{svc}"), pam_stack(&o.pam_dir, svc));
    }
    if let Some(cfg) = &cfg {
        r.check("helperd", running(cfg));
        r.check("socket", socket(&cfg.helperd.socket, 0o666));
        r.check("root socket", socket(&cfg.helperd.root_socket(), 0o600));
        r.check("snapshot", snapshot(cfg));
    }
    r.check("nss module", nss_module::check(Path::new("/proc")));
    if r.failed == 0 {
        println!("all checks passed");
        0
    } else {
        println!("{} check(s) failed", r.failed);
        1
    }
}

fn issuer_checks(r: &mut Report, http: &dyn Transport, cfg: &Config, iss: &oidc_core::Issuer) {
    let name = format!("issuer {}", iss.url);
    let found = match crate::discovery::discover(http, &iss.url) {
        Ok(d) => d,
        Err(crate::discovery::Error::Unreachable(e)) => {
            r.fail(
                &name,
                &format!("discovery unreachable: {e}"),
                "check DNS, the route or proxy to the IdP, and the issuer URL",
            );
            return;
        }
        Err(crate::discovery::Error::NotJson { url, error }) => {
            r.fail(
                &name,
                &format!("{url} is not a discovery document (not JSON: {error})"),
                "set url to the issuer exactly as its tokens' iss claim names it",
            );
            return;
        }
        Err(crate::discovery::Error::Mismatch { got, want }) => {
            r.fail(
                &name,
                &format!("discovery says issuer {got:?}, config says {want:?}"),
                "set url to exactly the discovery document's issuer (watch the trailing slash)",
            );
            return;
        }
    };
    r.pass(&name, "discovery reachable, issuer matches");
    clients::checks(&found, cfg, iss).into_iter().for_each(|(n, outcome)| r.check(&n, outcome));
    let jwks_uri = iss.jwks_uri.clone().or_else(|| found.field("jwks_uri").map(String::from));
    r.check(
        &format!("{name} jwks"),
        match jwks_uri.map(|u| (http.get(&u), u)) {
            None => fail("no jwks_uri in discovery", "set jwks_uri for this issuer"),
            Some((Err(e), _)) => fail(format!("JWKS unreachable: {e}"), "check the route to the IdP's jwks_uri"),
            Some((Ok(f), u)) => match Jwks::from_idp_body(&f.body) {
                Ok(j) if !j.keys.is_empty() => Ok(format!("{} usable key(s) at {u}", j.keys.len())),
                Ok(j) => fail(
                    format!("no usable signing key at {u} ({})", j.skipped.join("; ")),
                    "the IdP must publish RSA/EC/Ed25519 signing keys",
                ),
                Err(e) => fail(format!("{u}: {e}"), "the jwks_uri must serve a JSON Web Key Set"),
            },
        },
    );
    r.check(
        &format!("{name} clock"),
        match found.date.as_deref().and_then(oidc_core::parse_http_date) {
            None => Ok("the IdP sent no Date header; clock not compared".into()),
            Some(idp) => {
                let skew = crate::clock::unix_now() - idp;
                if skew.unsigned_abs() > iss.leeway_secs {
                    fail(
                        format!("this host's clock is {skew}s off the IdP's (leeway {}s): tokens will look expired or not yet valid", iss.leeway_secs),
                        "enable time sync (systemd-timesyncd or chrony; on EC2 the Amazon Time Sync Service)",
                    )
                } else {
                    Ok(format!("skew {skew}s within leeway {}s", iss.leeway_secs))
                }
            }
        },
    );
}

fn nsswitch(path: &Path) -> Outcome {
    let text = std::fs::read_to_string(path)
        .map_err(|e| (format!("cannot read {}: {e}", path.display()), "restore /etc/nsswitch.conf".to_string()))?;
    for db in ["passwd", "group"] {
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{db}:")));
        let words: Vec<&str> = line.map(|l| l.split_whitespace().skip(1).collect()).unwrap_or_default();
        let files = words.iter().position(|w| *w == "files");
        match (files, words.iter().position(|w| *w == "oidc")) {
            (_, None) => {
                return fail(
                    format!("{db}: has no oidc: OIDC users and groups do not resolve"),
                    format!("add oidc after files on the {db}: line (the packages do this)"),
                )
            }
            (Some(f), Some(o)) if f < o => {
                // Sources after oidc (sss, ldap, systemd) would be shadowed by an OIDC name.
                if let Some(after) = words[o + 1..].iter().find(|w| !w.starts_with('[') && !w.starts_with('#')) {
                    return fail(
                        format!("{db}: {after} comes after oidc: an OIDC name could shadow one of its names"),
                        format!("put oidc last on the {db}: line (the packages do this)"),
                    );
                }
            }
            _ => {
                return fail(
                    format!("{db}: oidc comes before files: a local account could be shadowed"),
                    format!("order the {db}: line `files ... oidc`"),
                )
            }
        }
    }
    Ok("passwd and group: files first, oidc last".into())
}

fn pam_stack(dir: &Path, svc: &str) -> Outcome {
    let read = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
    let main = dir.join(svc);
    let text = read(&main);
    if text.is_empty() {
        return fail(format!("{} is missing or empty", main.display()), "install the service's PAM stack");
    }
    let mut all = text.clone();
    for inc in text.lines().filter_map(|l| l.trim().strip_prefix("@include")) {
        all.push_str(&read(&dir.join(inc.trim())));
    }
    let lines: Vec<&str> = all.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let uses = lines.iter().any(|l| l.contains("pam_oidc.so"));
    // Every argument must be one the module knows: a typo (`require_groups=`)
    // is refused at login time, for everyone — better caught now.
    for l in lines.iter().filter(|l| l.contains("pam_oidc.so")) {
        let args = l.split("pam_oidc.so").nth(1).unwrap_or("");
        for a in args.split_whitespace() {
            let known = oidc_core::PAM_ARGUMENTS.iter().any(|k| match k.strip_suffix('=') {
                Some(name) => a.strip_prefix(name).is_some_and(|v| v.starts_with('=') && v.len() > 1),
                None => a == *k,
            });
            if !known {
                return fail(
                    format!(
                        "{}: unknown pam_oidc argument {a:?} (every login through it would be refused)",
                        main.display()
                    ),
                    format!("use one of: {}", oidc_core::PAM_ARGUMENTS.join(" ")),
                );
            }
        }
    }
    // Local users must have a way through: pam_oidc leaves them alone
    // (PAM_IGNORE), so an auth section with no other module locks them out.
    let auth: Vec<&&str> = lines.iter().filter(|l| l.starts_with("auth") || l.starts_with("@include")).collect();
    let oidc_only = auth.iter().any(|l| l.starts_with("auth") && l.contains("pam_oidc.so"))
        && !auth.iter().any(|l| (l.starts_with("auth") && !l.contains("pam_oidc.so")) || l.contains("common-auth"));
    if oidc_only && svc != "sshd" {
        return fail(
            format!("{}: pam_oidc.so is the only auth module: local users (the EC2 admin, password sudoers) are locked out", main.display()),
            "use `auth [success=done ignore=ignore default=die] pam_oidc.so ...` followed by `@include common-auth` (docs/pam-stacks.md, pam_oidc(8))",
        );
    }
    if uses {
        Ok(format!("{} uses pam_oidc.so", main.display()))
    } else {
        fail(
            format!("{} does not use pam_oidc.so", main.display()),
            "add the auth/account/session lines from docs/pam-stacks.md, or `pam-auth-update --enable oidc`",
        )
    }
}

fn running(cfg: &Config) -> Outcome {
    match ipc_call(&cfg.helperd.socket, &Request::Ping, Duration::from_secs(2)) {
        Ok(Response::Pong { version }) => Ok(format!("helperd {version} answers on {}", cfg.helperd.socket.display())),
        Ok(other) => fail(format!("unexpected answer {other:?}"), "restart helperd"),
        Err(e) => fail(e.to_string(), "systemctl enable --now pam-oidc-helperd; journalctl -u pam-oidc-helperd"),
    }
}

fn socket(path: &Path, want: u32) -> Outcome {
    let m = std::fs::symlink_metadata(path)
        .map_err(|e| (format!("{}: {e}", path.display()), "start helperd".to_string()))?;
    if !m.file_type().is_socket() {
        return fail(format!("{} is not a socket", path.display()), "remove it and restart helperd");
    }
    if m.uid() != 0 {
        return fail(
            format!("{} is owned by uid {}, not root", path.display(), m.uid()),
            "only the helperd service (root) may create it: remove it and restart helperd",
        );
    }
    if m.mode() & 0o777 != want {
        let why = if want == 0o666 {
            "credential_process and status connect as users"
        } else {
            "the module's requests must share no queue with unprivileged peers"
        };
        return fail(
            format!("{} has mode {:o}, want {want:o} ({why})", path.display(), m.mode() & 0o777),
            "restart helperd (it sets the mode)",
        );
    }
    Ok(format!("{} root-owned, mode {want:o}", path.display()))
}

/// Groups that sudoers or polkit grant privilege to and that the host does not
/// have: a token's group of that name (of the issuer that owns it) becomes
/// one automatically. Such a group must come from an explicit map entry (a
/// stable IdP id), never from whatever group a user can create.
fn privileged_groups(cfg: &Config, sudoers: &Path, polkit: &Path) -> Outcome {
    let mut texts = vec![];
    let mut files = vec![sudoers.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(sudoers.with_extension("d")) {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    if let Ok(rd) = std::fs::read_dir(polkit) {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    for f in &files {
        if let Ok(t) = std::fs::read_to_string(f) {
            texts.push(t);
        }
    }
    let mut granted: Vec<String> = vec![];
    for t in &texts {
        for line in t.lines().map(str::trim).filter(|l| !l.starts_with('#') || l.starts_with("#include")) {
            for w in line.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')') {
                if let Some(g) = w.strip_prefix('%').filter(|g| !g.is_empty() && !g.starts_with(':')) {
                    granted.push(g.to_string());
                }
            }
            for part in line.split("isInGroup(").skip(1) {
                if let Some(g) = part.trim_start_matches(['"', '\'']).split(['"', '\'']).next() {
                    granted.push(g.to_string());
                }
            }
        }
    }
    granted.sort();
    granted.dedup();
    let local = std::fs::read_to_string(&cfg.accounts.group_file).unwrap_or_default();
    let is_local = |g: &str| local.lines().any(|l| l.split(':').next() == Some(g));
    let mut risky = vec![];
    for g in &granted {
        if is_local(g) || nss_snapshot::format::is_reserved(g.as_bytes()) {
            continue; // local: extended only by an explicit map entry; reserved: never served
        }
        let mapped = cfg.issuers.iter().any(|i| i.groups.map.values().any(|t| t == g));
        let owner = cfg.name_owner(g).filter(|i| i.groups.auto);
        if let (false, Some(i)) = (mapped, owner) {
            risky.push(format!("{g} (any {} group named {g:?})", i.url));
        }
    }
    if !risky.is_empty() {
        return fail(
            format!("sudoers/polkit grant {} — not local groups, so an IdP group of that name becomes one", risky.join(", ")),
            "map the IdP's stable group id onto it ([issuer.groups] map = { \"<id>\" = \"ops-admins\" }) and set auto = false, or create the local group",
        );
    }
    Ok(format!("{} group(s) granted by sudoers/polkit; none can be made by a token alone", granted.len()))
}

/// sshd looks a user up before PAM runs and calls one it cannot resolve
/// invalid (and feeds PAM a fake password): never-seen OIDC users must resolve.
fn prelogin(cfg: &Config) -> Outcome {
    if !cfg.issuers.iter().any(|i| i.user_accounts) {
        return Ok("no issuer makes user accounts (role accounts only)".into());
    }
    let a = &cfg.accounts;
    let fix = "set accounts.prelogin_patterns to a namespace (e.g. [\"*-oidc\"]) or accounts.roster_file \
               (one name per line), then restart helperd";
    let roster = match &a.roster_file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count()),
            Err(e) => return fail(format!("roster_file {}: {e}", p.display()), fix),
        },
        None => None,
    };
    if a.prelogin_patterns.is_empty() && roster.is_none() {
        return fail(
            "no pre-login names: the first ssh login of a never-seen OIDC user fails (sshd treats the user as invalid)",
            fix,
        );
    }
    Ok(format!(
        "patterns [{}]{}",
        a.prelogin_patterns.join(", "),
        roster.map_or(String::new(), |n| format!(", roster of {n} name(s)"))
    ))
}

/// The locks file: an unreadable one refuses every OIDC login (fail closed).
fn locks(cfg: &Config) -> Outcome {
    match oidc_core::LocksSaved::read(&cfg.helperd.state_dir) {
        Ok(s) if s.locks.is_empty() => Ok("no identity is locked".into()),
        Ok(s) => Ok(format!("{} lock(s) in force (helperd locks)", s.locks.len())),
        Err(e) => fail(
            format!("{e}: every OIDC login is refused while it cannot be read"),
            "repair or remove the file (it lists locked identities), then restart helperd",
        ),
    }
}

/// The fleet id key: without it no new account can be admitted, and a
/// readable one lets users aim at each other's uids.
fn id_key(cfg: &Config) -> Outcome {
    let p = &cfg.accounts.id_key_file;
    nss_snapshot::format::IdKey::read(p).map_err(|e| {
        (
            e,
            format!(
                "install the fleet's id key at {} (0600 root), or on a single host run `helperd id-key generate`",
                p.display()
            ),
        )
    })?;
    Ok(format!("{} (128-bit, private to root)", p.display()))
}

fn snapshot(cfg: &Config) -> Outcome {
    let p = &cfg.helperd.nss_snapshot;
    // libnss_oidc.so.2 reads one path: $NSS_OIDC_SNAPSHOT (tests) or the default.
    let env = std::env::var_os(nss_snapshot::format::PATH_ENV);
    let nss_reads = nss_snapshot::format::snapshot_path(env.as_ref().map(|v| v.as_encoded_bytes()));
    if *p != nss_reads {
        return fail(
            format!(
                "helperd.nss_snapshot is {} but libnss_oidc.so.2 reads {}: OIDC users will not resolve",
                p.display(),
                nss_reads.display()
            ),
            "remove helperd.nss_snapshot from the config (the default is the path the NSS module reads)",
        );
    }
    let bytes = std::fs::read(p)
        .map_err(|e| (format!("{}: {e}", p.display()), "start helperd: it writes the snapshot at start".to_string()))?;
    let s = nss_snapshot::reader::Snapshot::parse(&bytes)
        .map_err(|_| (format!("{} is corrupt", p.display()), "restart helperd to rewrite it".to_string()))?;
    // Every account in the store resolves in the snapshot with its uid (login
    // times may be newer in the store: they are not part of the snapshot).
    let store_path = cfg.helperd.state_dir.join(oidc_core::STORE_FILE);
    if let Ok(store) = oidc_core::Store::load(&store_path) {
        let missing = store
            .users
            .iter()
            .filter(|u| !matches!(s.user_by_name(u.name.as_bytes()), Ok(Some(x)) if x.uid == u.uid))
            .count();
        if missing > 0 {
            return fail(
                format!("{} lacks {missing} of the account store's {} users", p.display(), store.users.len()),
                "restart helperd to rewrite it",
            );
        }
    }
    Ok(format!("{} users, {} groups", s.n_users, s.n_groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Reply, ScriptedTransport};

    const DISCOVERY: &str = "https://idp.test/.well-known/openid-configuration";

    fn config() -> Config {
        let text = "version = 1\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n";
        Config::parse(text, Path::new("t.toml")).unwrap()
    }

    /// The failures `issuer_checks` reports for a scripted IdP.
    fn failures(t: &ScriptedTransport) -> usize {
        let mut r = Report { failed: 0 };
        let c = config();
        issuer_checks(&mut r, t, &c, &c.issuers[0]);
        t.done();
        r.failed
    }

    #[test]
    fn issuer_checks_use_the_one_discovery_rule() {
        let keys = crate::testing::jwks("k");
        let doc = |iss: &str| serde_json::json!({"issuer": iss, "jwks_uri": "https://idp.test/k"}).to_string();

        let t = ScriptedTransport::new();
        t.expect("GET", DISCOVERY, Reply::Http(200, doc("https://idp.test"))).expect(
            "GET",
            "https://idp.test/k",
            Reply::Http(200, keys.clone()),
        );
        assert_eq!(failures(&t), 0, "discovery, keys; no Date header: clock not compared");

        let t = ScriptedTransport::new();
        t.expect("GET", DISCOVERY, Reply::Http(200, doc("https://idp.test"))).expect(
            "GET",
            "https://idp.test/k",
            Reply::Http(200, r#"{"keys": []}"#.into()),
        );
        assert_eq!(failures(&t), 1, "no usable key");

        let t = ScriptedTransport::new();
        t.expect("GET", DISCOVERY, Reply::Dated(doc("https://idp.test"), "Mon, 01 Jan 2001 00:00:00 GMT".into()))
            .expect("GET", "https://idp.test/k", Reply::Http(200, keys));
        assert_eq!(failures(&t), 1, "the IdP's clock is decades off");

        for reply in [
            Reply::Http(200, doc("https://idp.test/")),
            Reply::Http(200, "<html>".into()),
            Reply::Fail("connection refused".into()),
        ] {
            let t = ScriptedTransport::new();
            t.expect("GET", DISCOVERY, reply);
            assert_eq!(failures(&t), 1, "one failure, and no further request");
        }
    }
}

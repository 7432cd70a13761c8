//! helperd — pam-oidc's privileged helper and admin CLI.

mod accounts;
mod atomic;
mod aws;
mod backchannel;
mod check_token;
mod cli;
mod client_auth;
mod clock;
mod device;
mod discovery;
mod dispatch;
mod doctor;
mod fetch;
mod fleet;
mod ids;
mod keys;
mod locks;
mod log;
mod procfs;
mod renew;
mod replay;
mod revalidate;
mod server;
mod sessions;
mod snapshot;
mod ssf;
#[cfg(test)]
mod testing;

use oidc_core::Helper as _;
use oidc_core::{Config, DEFAULT_CONFIG_PATH};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: helperd [--config PATH] COMMAND
commands:
  run                        run the daemon (foreground; systemd starts it this way)
  check-token [--user NAME] [--require-group G]... [--no-refresh]
                             read a token on stdin, print every check and the verdict
  status                     show each issuer's key cache (asks the running daemon)
  refresh ISSUER [--force]   ask the running daemon to refetch an issuer's keys now
                             (--force, root: even within the rate-limit window)
  doctor [--sshd-config F] [--nsswitch F] [--pam-dir D] [--service S]... [--sudoers F] [--polkit-rules D]
                             check config, IdP reachability and clock, sshd, nsswitch, PAM
                             stacks, helperd and its socket, the NSS snapshot; explain fixes
  users                      list the OIDC accounts (name, uid, groups, identity, last login)
  id-key generate [--force]  write a new secret id key to accounts.id_key_file (0600 root);
                             every host of a fleet needs the same key: copy it, don't regenerate
  id-key check               check the id key file (exists, 0600, root, 128 bits)
  rebind NAME --issuer URL --sub ID
                             move an OIDC account name to another identity of its issuer
                             (IdP app re-created, pairwise sub changed); uid and home stay
  sessions                   list live OIDC login sessions (user, pid, tty, rhost, token expiry,
                             the session's deadline, AWS role)
  lock NAME|--sub ISSUER SUB [--reason TEXT]
                             refuse that identity's logins, end its sessions, stop its AWS
                             credentials (persisted, until unlock)
  unlock NAME|--sub ISSUER SUB
                             lift a lock set with lock
  locks                      list the locks in force (local, the fleet list's, Shared Signals')
  renew [--token-file FILE]  (in a session) extend it with a fresh token of the same identity,
                             read from FILE, $OIDC_TOKEN_FILE or stdin
  credentials                this session's AWS credentials as credential_process JSON
                             (what the session's AWS config runs; only the session's uid or root)
  version";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = PathBuf::from(DEFAULT_CONFIG_PATH);
    if args.first().map(String::as_str) == Some("--config") {
        if args.len() < 2 {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
        config = PathBuf::from(args.remove(1));
        args.remove(0);
    }
    let Some(cmd) = args.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd != "run" {
        // A CLI command piped into `head` ends quietly on a closed pipe instead of
        // panicking in println! (the daemon keeps SIGPIPE ignored for its sockets).
        // SAFETY: setting a signal disposition before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    if cmd == "version" || cmd == "--version" {
        println!("helperd {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if cmd == "help" || cmd == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if cmd == "doctor" {
        return match doctor_opts(&args[1..]) {
            Ok(o) => ExitCode::from(u8::try_from(doctor::run(&config, Config::load(&config), &o)).unwrap_or(1)),
            Err(e) => {
                eprintln!("helperd: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("helperd: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match cmd.as_str() {
        "run" => run(cfg),
        "check-token" => match check_token_opts(&args[1..]) {
            Ok(o) => check_token::run(&cfg, &o, clock::unix_now()),
            Err(e) => {
                eprintln!("helperd: {e}\n{USAGE}");
                2
            }
        },
        "status" => cli::status(&cfg),
        "users" => cli::users(&cfg),
        "sessions" => cli::sessions(&cfg),
        "credentials" => cli::credentials(&cfg),
        "id-key" => cli::id_key(&cfg, &args[1..]),
        "rebind" => cli::rebind(&cfg, &args[1..]),
        "lock" => cli::lock(&cfg, &args[1..]),
        "unlock" => cli::unlock(&cfg, &args[1..]),
        "locks" => cli::locks(&cfg),
        "renew" => cli::renew(&cfg, &args[1..]),
        "refresh" => match args.get(1) {
            Some(iss) => {
                let force = args.get(2).map(String::as_str) == Some("--force");
                let client = oidc_core::Client::for_caller(&cfg.helperd, Duration::from_secs(30));
                match client.refresh_jwks_with(iss, force) {
                    Ok(d) => {
                        println!("{d}");
                        0
                    }
                    Err(e) => {
                        eprintln!("helperd: refresh failed: {e}");
                        1
                    }
                }
            }
            None => {
                eprintln!("{USAGE}");
                2
            }
        },
        _ => {
            eprintln!("helperd: unknown command {cmd:?}\n{USAGE}");
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn doctor_opts(args: &[String]) -> Result<doctor::Opts, String> {
    let mut o = doctor::Opts::default();
    let mut services = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--sshd-config" => o.sshd_config = val()?.into(),
            "--nsswitch" => o.nsswitch = val()?.into(),
            "--pam-dir" => o.pam_dir = val()?.into(),
            "--sudoers" => o.sudoers = val()?.into(),
            "--polkit-rules" => o.polkit = val()?.into(),
            "--service" => services.push(val()?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if !services.is_empty() {
        o.services = services;
    }
    Ok(o)
}

fn check_token_opts(args: &[String]) -> Result<check_token::Opts, String> {
    let mut o = check_token::Opts { user: None, require_groups: vec![], refresh: true };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--user" => o.user = Some(it.next().ok_or("--user needs a NAME")?.clone()),
            "--require-group" => o.require_groups.push(it.next().ok_or("--require-group needs a GROUP")?.clone()),
            "--no-refresh" => o.refresh = false,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(o)
}

fn run(cfg: Config) -> i32 {
    log::init();
    // SAFETY-free hardening: files we create are never group/world-writable.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let (listener, root_listener) =
        match (server::bind(&cfg.helperd.socket, 0o666), server::bind(&cfg.helperd.root_socket(), 0o600)) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("{e}");
                return 1;
            }
        };
    let timeout = Duration::from_secs(cfg.helperd.fetch_timeout_secs);
    let socket = cfg.helperd.socket.clone();
    let accounts = match accounts::AccountService::open(cfg.clone()) {
        Ok(a) => a,
        Err(e) => {
            log::error!("account store: {e}");
            return 1;
        }
    };
    if let Err(e) = accounts.rebuild() {
        log::error!("nss snapshot: {e}");
        return 1;
    }
    let replay = replay::ReplayCache::open(&cfg.helperd.state_dir, clock::unix_now());
    let pending_uses = cfg.helperd.state_dir.join(replay::PENDING_DIR);
    let _ = std::fs::create_dir_all(&pending_uses);
    replay.import_pending(&pending_uses, clock::unix_now());
    let locks = locks::Locks::open(&cfg.helperd.state_dir);
    fleet::lift_if_unconfigured(&cfg, &locks);
    let clock: Arc<dyn clock::Clock> = Arc::new(clock::SystemClock);
    let fleet_http = Arc::new(fetch::Http::new(Duration::from_secs(cfg.locks.fetch_timeout_secs)));
    let fleet = fleet::Fleet::new(&cfg, fleet_http, Arc::clone(&clock));
    let device =
        Arc::new(device::DeviceFlows::new(cfg.clone(), Arc::new(fetch::Http::new(timeout)), Arc::clone(&clock)));
    let cfg_aws = cfg.aws.clone();
    let cfg_sessions = cfg.sessions.clone();
    let state_dir = cfg.helperd.state_dir.clone();
    let keys = keys::KeyCache::new(cfg, Box::new(fetch::Http::new(timeout)));
    let aws_http = Arc::new(fetch::Http::new(Duration::from_secs(cfg_aws.timeout_secs)));
    let aws = aws::Broker::new(cfg_aws, aws_http, Arc::clone(&clock));
    if let Err(e) = aws.write_config_file() {
        log::error!("writing the AWS config file: {e}");
        return 1;
    }
    let svc = Arc::new(dispatch::Services {
        keys,
        accounts,
        sessions: sessions::Sessions::new(Arc::clone(&clock), Duration::from_secs(cfg_sessions.kill_after_secs))
            .persisted(state_dir.join(sessions::FILE)),
        device,
        aws,
        replay,
        locks,
        clock,
    });
    // Off unless configured; a listener that cannot start is logged and logins go on.
    if let Err(e) = backchannel::start(&svc) {
        log::error!("{e}; back-channel logout is off");
    }
    let bg = Arc::clone(&svc);
    let spawned = std::thread::Builder::new().name("helperd-refresh".into()).spawn(move || loop {
        bg.keys.refresh_due();
        bg.replay.import_pending(&bg.keys.config().helperd.state_dir.join(replay::PENDING_DIR), clock::unix_now());
        bg.replay.compact_if_due(clock::unix_now());
        bg.accounts.rebuild_if_inputs_changed();
        bg.sessions.reap();
        bg.aws.forget(&bg.sessions.ids());
        std::thread::sleep(bg.keys.next_due_in().min(Duration::from_secs(5)));
    });
    if let Err(e) = spawned {
        log::error!("starting the refresher: {e}");
        return 1;
    }
    // Session deadlines, checked every second (ending one is a few /proc reads).
    let ticker = Arc::clone(&svc);
    if let Err(e) = std::thread::Builder::new().name("helperd-sessions".into()).spawn(move || loop {
        if !ticker.sessions.tick().is_empty() {
            ticker.aws.forget(&ticker.sessions.ids());
        }
        std::thread::sleep(Duration::from_secs(1));
    }) {
        log::error!("starting the session clock: {e}");
        return 1;
    }
    // Device-code sessions' revalidation: calls to the IdPs, on a thread of
    // their own (never under a lock, never in the way of logins or root).
    let revalidator = Arc::clone(&svc);
    if let Err(e) = std::thread::Builder::new().name("helperd-revalidate".into()).spawn(move || loop {
        revalidate::step(&revalidator);
        std::thread::sleep(Duration::from_secs(1));
    }) {
        log::error!("starting the session revalidation: {e}");
        return 1;
    }
    if let Some(f) = fleet {
        if let Err(e) = fleet::spawn(Arc::clone(&svc), f) {
            log::error!("starting the fleet lock list's poller: {e}");
            return 1;
        }
    }
    let ssf_http: Arc<dyn fetch::Transport> = Arc::new(fetch::Http::new(timeout));
    if let Err(e) = ssf::start(&svc, &ssf_http) {
        log::error!("{e}");
        return 1;
    }
    let root_svc = Arc::clone(&svc);
    if let Err(e) = std::thread::Builder::new().name("helperd-root".into()).spawn(move || {
        server::serve_root(root_listener, root_svc);
    }) {
        log::error!("starting the root socket's server: {e}");
        return 1;
    }
    log::info!(
        "helperd {} listening on {} (public) and {} (root)",
        env!("CARGO_PKG_VERSION"),
        socket.display(),
        svc.keys.config().helperd.root_socket().display()
    );
    server::serve_public(listener, svc);
    0
}

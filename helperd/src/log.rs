//! helperd's log: syslog (facility authpriv, tag `helperd`) when /dev/log is
//! there, and stderr (the journal under systemd, the terminal by hand).

use std::sync::{Mutex, OnceLock};
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

static SYSLOG: OnceLock<Option<Mutex<Logger<LoggerBackend, Formatter3164>>>> = OnceLock::new();

pub fn init() {
    SYSLOG.get_or_init(|| {
        let f = Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "helperd".into(),
            pid: std::process::id(),
        };
        syslog::unix(f).ok().map(Mutex::new)
    });
}

#[derive(Clone, Copy)]
pub enum Level {
    Err,
    Warn,
    Info,
}

pub fn log(level: Level, msg: &str) {
    let tag = match level {
        Level::Err => "error",
        Level::Warn => "warning",
        Level::Info => "info",
    };
    eprintln!("helperd[{}] {tag}: {msg}", std::process::id());
    if let Some(Some(l)) = SYSLOG.get() {
        if let Ok(mut l) = l.lock() {
            let _ = match level {
                Level::Err => l.err(msg),
                Level::Warn => l.warning(msg),
                Level::Info => l.info(msg),
            };
        }
    }
}

macro_rules! info { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) } }
macro_rules! warning { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($t)*)) } }
macro_rules! error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Err, &format!($($t)*)) } }
pub(crate) use {error, info, warning};

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

/// Longest message logged; the rest is cut (with `…`).
pub const MAX_MESSAGE: usize = 2048;

/// The one place log text is made safe: every control character (newline,
/// carriage return, escape ...) becomes `\u{..}`, so no input can start a
/// forged line or move the cursor; length is bounded. Printable text is kept
/// as is, so values a caller already cleaned with `audit::clean` are unchanged.
pub fn escape(msg: &str) -> std::borrow::Cow<'_, str> {
    if msg.len() <= MAX_MESSAGE && !msg.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len().min(MAX_MESSAGE) + 8);
    for (n, c) in msg.chars().enumerate() {
        if n >= MAX_MESSAGE {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Every line logged by this test process (tests look for what must never be logged).
#[cfg(test)]
pub static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn log(level: Level, msg: &str) {
    let msg = &*escape(msg);
    let tag = match level {
        Level::Err => "error",
        Level::Warn => "warning",
        Level::Info => "info",
    };
    eprintln!("helperd[{}] {tag}: {msg}", std::process::id());
    #[cfg(test)]
    CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).push(msg.to_string());
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

/// Log `msg` unless this kind of message (`key`) was logged `BURST` times in
/// the current minute; the first line of the next minute says how many were
/// suppressed. For what peers can provoke at will (bad frames, refused
/// connections): they must not flood authpriv.
pub fn limited(level: Level, key: &str, msg: &str) {
    const BURST: u32 = 10;
    /// Kinds tracked at once (keys carry the peer's uid): the oldest are forgotten.
    const KEYS: usize = 1024;
    type Entry = (String, std::time::Instant, u32, u64);
    static STATE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
    let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    let i = match st.iter().position(|e| e.0 == key) {
        Some(i) => i,
        None => {
            if st.len() >= KEYS {
                st.remove(0);
            }
            st.push((key.to_string(), now, 0, 0));
            st.len() - 1
        }
    };
    let e = &mut st[i];
    if now.duration_since(e.1) >= std::time::Duration::from_secs(60) {
        let suppressed = e.3;
        *e = (key.to_string(), now, 0, 0);
        if suppressed > 0 {
            log(Level::Warn, &format!("{suppressed} more \"{key}\" messages suppressed in the last minute"));
        }
    }
    if e.2 < BURST {
        e.2 += 1;
        drop(st);
        log(level, msg);
    } else {
        e.3 += 1;
    }
}

macro_rules! limited_warning { ($key:expr, $($t:tt)*) => { $crate::log::limited($crate::log::Level::Warn, $key, &format!($($t)*)) } }
pub(crate) use limited_warning;

#[cfg(test)]
mod tests {
    #[test]
    fn no_input_starts_a_line() {
        let forged = "x\nhelperd[1] info: account created name=root\r\x1b[2K";
        let e = super::escape(forged);
        assert!(!e.contains('\n') && !e.contains('\r') && !e.contains('\x1b'), "{e}");
        assert!(e.contains("\\u{a}helperd[1]"), "{e}");
        assert_eq!(super::escape("plain \"text\" ok"), "plain \"text\" ok");
        assert!(super::escape(&"a".repeat(5000)).chars().count() <= super::MAX_MESSAGE + 1);
    }
}

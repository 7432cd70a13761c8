//! libnss_oidc.so.2 — serves OIDC-mapped users and groups to every process
//! from a snapshot file written by helperd. libc only, no threads, no network.
//!
//! * [`format`] — the snapshot layout and its writer (used by helperd).
//! * [`reader`] — safe, bounds-checked lookups over the bytes.
//! * `map` — the process-wide read-only mapping, re-mapped when replaced.
//! * `nss` — the glibc entry points (`_nss_oidc_*`).

pub mod format;
pub mod map;
pub mod nss;
pub mod reader;

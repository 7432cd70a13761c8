//! libnss_oidc.so.2 — serves OIDC-mapped users and groups to every process
//! from a snapshot file written by helperd. libc only, no threads, no network.
//!
//! * [`format`], [`reader`] — the snapshot (crate `nss_snapshot`, re-exported).
//! * `map` — the process-wide read-only mapping, re-mapped when replaced.
//! * `nss` — the glibc entry points (`_nss_oidc_*`).

pub use nss_snapshot::{format, reader};
pub mod map;
pub mod nss;

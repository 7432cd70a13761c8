//! The NSS snapshot: one immutable file helperd writes and libnss_oidc.so.2
//! maps. Its own crate so that everything that needs the format (helperd,
//! `oidc_core`, hence `pam_oidc.so`) links no NSS entry point.
//!
//! * [`format`] — the layout, the writer and the keyed id hash.
//! * [`names`] — the name rules (wildcards, portable names, reserved names).
//! * [`reader`] — safe, bounds-checked lookups over the bytes.

pub mod format;
pub mod names;
pub mod reader;

//! The NSS snapshot: one immutable file helperd writes and libnss_oidc.so.2
//! maps. Its own crate so that everything that needs the format (helperd,
//! `oidc_core`, hence `pam_oidc.so`) links no NSS entry point.
//!
//! * [`layout`] — every header and record field's offset, named once.
//! * [`format`] — the writer (re-exports [`layout`] and [`idkey`]).
//! * [`idkey`] — the fleet's id key, the keyed id hash, root-only secret files.
//! * [`names`] — the name rules (wildcards, portable names, reserved names).
//! * [`reader`] — safe, bounds-checked lookups over the bytes.
//!
//! No `unsafe` here: the mapping (the one unsafe part of reading) is
//! `nss_oidc`'s; the key wipe uses `zeroize`.

#![forbid(unsafe_code)]

pub mod format;
pub mod idkey;
pub mod layout;
pub mod names;
pub mod reader;

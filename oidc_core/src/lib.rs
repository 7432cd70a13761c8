//! Core of pam-oidc: everything that can be pure lives here so the PAM module,
//! helperd and the tests share one implementation.
//!
//! * [`config`] — the one TOML config file and its typed views.
//! * [`token`] — structural parsing of a compact JWS (size, parts, base64, JSON).
//! * [`jwks`] — JWK sets, key selection, the on-disk JWKS cache format.
//! * [`verify`] — signature and claim checks; time is passed in.
//! * [`policy`] — login-name rules and group policy.
//! * [`reason`] — the typed rejection reasons.
//! * [`ipc`] — the helperd protocol and its length-prefixed codec.
//! * [`audit`] — the one-line audit record.
//! * [`secret`] — a token holder that wipes itself and never prints.

pub mod accounts;
pub mod alg;
pub mod audit;
pub mod claims;
pub mod config;
pub mod ipc;
pub mod jwks;
pub mod login;
pub mod policy;
pub mod reason;
pub mod replay;
pub mod secret;
pub mod session;
pub mod strict_json;
pub mod time;
pub mod token;
pub mod verify;

pub use reason::Rejection;
pub use secret::Secret;

//! uids and gids: a pin, a uid claim, or the keyed fleet hash (the NSS module
//! computes the same hash for pre-login names).

use super::LoginEvent;
use crate::config::Accounts;
use nss_snapshot::format::{id_hash, IdKey};

/// The uid a name gets with no claim: pinned, else the keyed fleet hash. The
/// NSS module computes the same for pre-login names (as root: it needs the key).
pub fn uid_for(a: &Accounts, key: &IdKey, name: &str) -> u32 {
    match a.pinned_uids.get(name) {
        Some(uid) => *uid,
        None => id_hash(key, b"user", name.as_bytes(), a.uid_min, a.uid_max),
    }
}

/// Why a new identity has no uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidError {
    /// Its uid claim is outside the range.
    OutOfRange(u32),
    /// The uid is the keyed hash and there is no usable key.
    NoKey,
}

/// The uid a new identity would get: pin, else its uid claim, else the keyed
/// hash of its name.
pub fn new_uid(a: &Accounts, key: Option<&IdKey>, ev: &LoginEvent) -> Result<u32, UidError> {
    match (a.pinned_uids.get(&ev.name), ev.uid_claim, key) {
        (Some(p), _, _) => Ok(*p),
        (None, Some(c), _) if c < a.uid_min || c > a.uid_max => Err(UidError::OutOfRange(c)),
        (None, Some(c), _) => Ok(c),
        (None, None, Some(k)) => Ok(uid_for(a, k, &ev.name)),
        (None, None, None) => Err(UidError::NoKey),
    }
}

/// The gid a new OIDC host group gets: the keyed fleet hash of its name.
pub fn gid_for(a: &Accounts, key: &IdKey, group: &str) -> u32 {
    id_hash(key, b"group", group.as_bytes(), a.gid_min, a.gid_max)
}

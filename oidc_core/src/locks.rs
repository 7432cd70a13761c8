//! Locks: identities refused on this host until unlocked — set by root
//! (`helperd lock`), or by a fleet lock list helperd polls. helperd writes
//! `state_dir/locks.json` (0600, atomic replace) and holds it in memory; the
//! PAM module reads the file itself when helperd is unreachable, so a lock
//! holds with helperd down too.

use crate::session::SessionClaims;
use serde::{Deserialize, Serialize};

/// The locks file in helperd's state dir.
pub const FILE: &str = "locks.json";
/// The format version [`Saved`] is written with.
pub const VERSION: u32 = 1;

/// Who a lock is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A host account or login name: the OIDC account of that name and every
    /// role-account login whose token's login name it is.
    Name {
        /// The name, as `helperd users` / `helperd sessions` show it.
        name: String,
    },
    /// One identity of one issuer, whatever name it logs in with.
    Identity {
        /// The issuer's configured URL.
        issuer: String,
        /// The token's `sub` claim.
        sub: String,
    },
}

impl Target {
    /// Does the lock hold for a login or session with these claims?
    pub fn holds_for(&self, c: &SessionClaims) -> bool {
        match self {
            // Names are compared without ASCII case: `lock Alice` is alice's lock.
            Target::Name { name } => c.account.eq_ignore_ascii_case(name) || c.identity.eq_ignore_ascii_case(name),
            // The token's `sub`, or the identity the account store binds
            // (`identity_claim`: Entra's `oid` is the same for every client).
            Target::Identity { issuer, sub } => {
                c.issuer == *issuer && (c.sub == *sub || (!c.identity_id.is_empty() && c.identity_id == *sub))
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Name { name } => write!(f, "name {}", crate::audit::clean(name)),
            Target::Identity { issuer, sub } => {
                write!(f, "identity {} sub {}", crate::audit::clean(issuer), crate::audit::clean(sub))
            }
        }
    }
}

/// One lock: for whom, set by whom, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Who is locked out.
    pub target: Target,
    /// Who set it: `root (loginuid 1000 alice)` for `helperd lock`, or the
    /// fleet list's location.
    pub by: String,
    /// When (Unix seconds).
    pub at: i64,
    /// Why, as given (may be empty).
    #[serde(default)]
    pub reason: String,
    /// Where it comes from: `local` (`helperd lock`) or `fleet` (the polled
    /// list: replaced on each poll, not removable with `unlock`).
    pub source: String,
    /// Set along with the lock of this name (the identity holding it), and
    /// lifted with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// `locks.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    /// Format version ([`VERSION`]).
    pub v: u32,
    /// Every lock in force.
    pub locks: Vec<Lock>,
}

impl Saved {
    /// Parse the file's bytes (a version this build does not know is an error).
    pub fn parse(b: &[u8]) -> Result<Saved, String> {
        let s: Saved = serde_json::from_slice(b).map_err(|e| e.to_string())?;
        if s.v != VERSION {
            return Err(format!("locks file version {} (this build reads {VERSION})", s.v));
        }
        Ok(s)
    }

    /// Read `state_dir/locks.json`: no file is no lock; a file that cannot
    /// be read or parsed is an error (the caller fails closed).
    pub fn read(state_dir: &std::path::Path) -> Result<Saved, String> {
        let path = state_dir.join(FILE);
        match std::fs::read(&path) {
            Ok(b) => Saved::parse(&b).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved { v: VERSION, locks: vec![] }),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The first lock that holds for these claims.
    pub fn lock_for(&self, c: &SessionClaims) -> Option<&Lock> {
        self.locks.iter().find(|l| l.target.holds_for(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(account: &str, identity: &str, sub: &str) -> SessionClaims {
        SessionClaims::naming("https://idp", sub, account, identity)
    }

    #[test]
    fn a_lock_holds_for_the_name_and_for_the_identity_behind_a_role_account() {
        let name = Target::Name { name: "alice".into() };
        assert!(name.holds_for(&claims("alice", "alice", "u-1")));
        assert!(name.holds_for(&claims("deploy", "alice", "u-1")), "alice's login into a role account");
        assert!(!name.holds_for(&claims("deploy", "bob", "u-2")), "other holders of the role account");
        let id = Target::Identity { issuer: "https://idp".into(), sub: "u-1".into() };
        assert!(id.holds_for(&claims("alice2", "alice2", "u-1")), "renamed at the IdP: still locked");
        // Entra: a pairwise `sub` per client, one `oid` (identity_claim) for all.
        let oid = Target::Identity { issuer: "https://idp".into(), sub: "oid-1".into() };
        let other_client = SessionClaims { identity_id: "oid-1".into(), ..claims("alice", "alice", "pairwise-2") };
        assert!(oid.holds_for(&other_client), "the identity_claim value is the identity");
        assert!(!id.holds_for(&SessionClaims { issuer: "https://other".into(), ..claims("a", "a", "u-1") }));
    }

    #[test]
    fn the_file_round_trips_and_fails_closed() {
        let s = Saved {
            v: VERSION,
            locks: vec![Lock {
                target: Target::Name { name: "alice".into() },
                by: "root".into(),
                at: 5,
                reason: "left".into(),
                source: "local".into(),
                via: None,
            }],
        };
        let b = serde_json::to_vec(&s).unwrap();
        let back = Saved::parse(&b).unwrap();
        assert!(back.lock_for(&claims("alice", "alice", "x")).is_some());
        assert!(Saved::parse(b"{").is_err());
        assert!(Saved::parse(br#"{"v":2,"locks":[]}"#).is_err(), "a future format is not read as no lock");
        let dir = std::env::temp_dir().join(format!("locks-test-{}", std::process::id()));
        assert!(Saved::read(&dir).unwrap().locks.is_empty(), "no file: no lock");
    }
}

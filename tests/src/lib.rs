//! Harness for the integration tests: a real OpenID Provider (tests/idp, npm
//! oidc-provider) on 127.0.0.1, a real helperd, and the real pam_oidc.so run
//! by pamtester under pam_wrapper (no host PAM config touched). Every process
//! started here is killed by PID on drop; every file lives in a temp dir.
//!
//! Artifacts are built by `scripts/test` (or `scripts/build`) before the tests run.

mod artifacts;
mod config;
mod env;
mod helperd;
mod idp;
mod pam;
mod process;

pub mod aws;
pub mod nss;
pub mod sshd;

pub(crate) use artifacts::target;
pub use artifacts::{client_bin, fault_module_so, helperd_bin, module_so, nss_so, root};
pub use config::{Config, Issuer, RoleAccount, Table, Value, TEST_AUDIENCES};
pub use env::{Env, TEST_ID_KEY};
pub use helperd::{login_request, Helperd};
pub use idp::{b64, raw_token, Idp};
pub use pam::{pam_finish, pamtester_cmd, PamRun};
pub use process::{die_with_parent, free_port, now, TempDir};
pub(crate) use process::{kill, wait_for};

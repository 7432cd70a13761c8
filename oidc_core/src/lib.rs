//! Core of pam-oidc: everything that can be pure lives here so the PAM module,
//! helperd and the tests share one implementation. No sockets, no clock and
//! no network inside: helperd is a [`Helper`], keys come from a
//! [`KeyStore`], time from a [`Clock`] or a value passed in.
//!
//! The modules are private; this crate's API is the one `pub use` block
//! below (rustls' `lib.rs` is the model), grouped by concern:
//!
//! * config — the one TOML config file and its typed views ([`Config`]).
//! * tokens — structural parsing ([`parse_token`]), JWK sets and the on-disk
//!   JWKS cache ([`Jwks`], [`CacheFile`]), signature and claim checks
//!   ([`verify`]), one token start to finish ([`verify_token`]); back-channel
//!   logout tokens ([`verify_logout_token_with`], [`LogoutToken`]).
//! * identity — login names, groups, accounts and uids ([`host_groups`],
//!   [`account_for`], [`Store`], [`uid_for`]), group policy ([`check_groups`]).
//! * sessions — the verified claims a session keeps ([`SessionClaims`]) and
//!   what a stack demands of them ([`Demand`]).
//! * helperd protocol — [`Request`], [`Response`], the frame codec, [`Client`].
//! * records — the audit line ([`AuditEvent`]), the replay files, the typed
//!   refusal reasons ([`Rejection`]), wiped secrets ([`Secret`]), locks
//!   ([`Lock`], [`LocksSaved`]).
//!
//! One module is public as a whole: [`crypto`], the product's one crypto stack
//! (ring, as jsonwebtoken's provider; SHA-256).

#![deny(unreachable_pub)]
#![deny(missing_docs)]

mod accounts;
mod alg;
mod audit;
mod claims;
mod config;
pub mod crypto;
mod ipc;
mod jwks;
mod locks;
mod login;
mod logout;
mod policy;
mod reason;
mod replay;
mod secret;
mod session;
mod set;
mod strict_json;
mod time;
mod token;
mod verify;

pub use crate::{
    accounts::{
        account_for, deny_probes, gid_for, host_groups, map_groups, new_uid, uid_for, Admitted, HostGroup, LocalDb,
        LoginEvent, Refusal as AdmissionRefusal, Store, StoredGroup, StoredUser, UidError,
        INCOMPLETE as GROUPS_INCOMPLETE, LAST_LOGIN_RESOLUTION_SECS, STORE_FILE, STORE_VERSION,
    },
    alg::{Alg, KeyKind, ALL as ALL_ALGS},
    audit::{clean, clean_n, AuditEvent, Outcome as AuditOutcome, MAX_CONTEXT, MAX_LOGGED},
    claims::{get as get_claim, Cond, Conditions, Scalar},
    config::{
        check_url, parse_s3_url, Accounts, Aws, AwsRole, AwsSource, BackchannelLogout, Config, ConfigError,
        Groups as GroupSettings, Helperd as HelperdSettings, Issuer, Locks as LocksSettings, OnExpiry, OnRevoked,
        Pam as PamSettings, Policy, RoleAccount, Sessions as SessionSettings, Ssf as SsfSettings,
        DEFAULT_PATH as DEFAULT_CONFIG_PATH, MAX_LIST_BYTES_CEILING, MAX_TOKEN_BYTES_CEILING, MULTI_TENANT,
        PAM_ARGUMENTS, VERSION as CONFIG_VERSION,
    },
    ipc::{
        call as ipc_call, decode as decode_frame, encode_frame, page as page_of, read_frame, write_frame, AwsStatus,
        Client, DeviceFailure, Helper, IpcError, IssuerStatus, RefusalCode, Request, Response, MAX_FRAME, PAGE_BUDGET,
        PROTOCOL_VERSION,
    },
    jwks::{
        cache_path as jwks_cache_path, read_cache as read_jwks_cache, CacheFile, Jwks, Key as JwkKey, Material,
        CACHE_VERSION as JWKS_CACHE_VERSION, MAX_CACHE_BYTES as MAX_JWKS_CACHE_BYTES, MAX_KIDLESS_KEYS,
    },
    locks::{Lock, Saved as LocksSaved, Target as LockTarget, FILE as LOCKS_FILE, VERSION as LOCKS_VERSION},
    login::{verify_token, verify_token_with, CacheDir, KeyStore, Outcome as TokenOutcome},
    logout::{
        verify_logout, verify_logout_token_with, LogoutToken, EVENT as BACKCHANNEL_LOGOUT_EVENT,
        MAX_AGE_SECS as LOGOUT_TOKEN_MAX_AGE_SECS,
    },
    policy::{check_group_name, check_groups, check_login_name, MAX_LOGIN_NAME},
    reason::Rejection,
    replay::{
        log_uses as replay_log_uses, recorded as replay_recorded, Marker as ReplayMarker, Saved as ReplaySaved,
        FILE as REPLAY_FILE, LEGACY_FILE as REPLAY_LEGACY_FILE, PENDING_DIR as REPLAY_PENDING_DIR,
    },
    secret::Secret,
    session::{satisfies, Demand, SessionClaims, SessionInfo},
    set::{
        verify_set, verify_set_with, SecEvent, Subject as SetSubject, ACCOUNT_DISABLED, ACCOUNT_ENABLED, MAX_SET_BYTES,
        SESSION_REVOKED,
    },
    strict_json::StrictObject,
    time::{format_rfc3339, parse_http_date, parse_rfc3339, unix_now, Clock, SystemClock},
    token::{parse as parse_token, Parsed as ParsedToken},
    verify::{login_name, replay_id, verify, Check, Keys, Report, Verified},
};

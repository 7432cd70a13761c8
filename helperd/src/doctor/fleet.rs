//! `helperd doctor`'s revocation checks: when helperd last got a good fleet
//! lock list (from the status file its poller writes after every poll), and
//! that every Shared Signals stream's bearer token file is root's alone.

use super::{fail, Outcome};
use crate::fleet::Status;
use oidc_core::Config;

pub(super) fn fleet_list(cfg: &Config, now: i64) -> Option<Outcome> {
    let list = cfg.locks.fleet_list.as_ref()?;
    let fix_iam = "give the instance role s3:GetObject on that object (docs/sessions.md, Fleet lock list), \
                   check [locks] fleet_list, s3_endpoint and [aws] region, and helperd's log";
    let st = match Status::read(&cfg.helperd.state_dir) {
        Ok(s) if s.list == *list => s,
        Ok(s) => {
            return Some(fail(
                format!("the last poll was of {} (helperd has not polled {list} since the change)", s.list),
                "restart helperd after changing locks.fleet_list",
            ))
        }
        Err(e) => {
            return Some(fail(format!("{list} never polled: {e}"), "start helperd (systemctl start pam-oidc-helperd)"))
        }
    };
    let err = st.last_error.as_deref().map(|e| format!("; last error: {}", oidc_core::clean(e))).unwrap_or_default();
    let stale = i64::try_from(cfg.locks.stale_warn_secs).unwrap_or(i64::MAX);
    Some(match st.last_ok {
        None => fail(format!("{list} never fetched{err}"), fix_iam),
        Some(t) if now - t > stale => fail(
            format!(
                "{list} last fetched {}s ago ({}), more than locks.stale_warn_secs ({stale}s): \
                 the {} fleet lock(s) in force may be out of date{err}",
                now - t,
                oidc_core::format_rfc3339(t),
                st.entries
            ),
            fix_iam,
        ),
        Some(t) => Ok(format!("{list} fetched {}s ago, {} entr(y/ies) in force{err}", now - t, st.entries)),
    })
}

/// Every `[[locks.ssf]]` token file: helperd does not start otherwise.
pub(super) fn ssf_tokens(cfg: &Config) -> Option<Outcome> {
    if cfg.locks.ssf.is_empty() {
        return None;
    }
    for s in &cfg.locks.ssf {
        if let Err(e) = crate::ssf::read_token(&s.token_file) {
            return Some(fail(
                format!("locks.ssf {}: token_file {e}: helperd refuses to start", s.poll_url),
                "put the stream's bearer token there, owned by root, mode 0600 (chown root:root; chmod 600)",
            ));
        }
    }
    Some(Ok(format!("{} stream(s); token files are root's alone", cfg.locks.ssf.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_fails_until_a_good_fetch_and_again_when_it_is_stale() {
        let dir = crate::testing::temp_dir("doctor-fleet");
        let text = format!(
            "version = 1\n[helperd]\nstate_dir = \"{d}\"\n[[issuer]]\nurl = \"https://idp.test\"\naudiences = [\"a\"]\n\
             [locks]\nfleet_list = \"s3://fleet-locks/k\"\nstale_warn_secs = 600\n",
            d = dir.display()
        );
        let cfg = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let write = |s: &Status| std::fs::write(dir.join(crate::fleet::STATUS_FILE), serde_json::to_vec(s).unwrap());
        assert!(fleet_list(&cfg, 1000).unwrap().unwrap_err().0.contains("never polled"));
        let mut st = Status { list: "s3://fleet-locks/k".into(), last_attempt: 1000, ..Status::default() };
        st.last_error = Some("S3 HTTP 403 AccessDenied".into());
        write(&st).unwrap();
        assert!(fleet_list(&cfg, 1000).unwrap().unwrap_err().0.contains("never fetched; last error: S3 HTTP 403"));
        st.last_ok = Some(1000);
        st.entries = 3;
        write(&st).unwrap();
        assert!(fleet_list(&cfg, 1500).unwrap().unwrap().contains("fetched 500s ago, 3 entr"));
        assert!(fleet_list(&cfg, 1601).unwrap().unwrap_err().0.contains("last fetched 601s ago"));
        let none = Config::parse(&text.replace("fleet_list = \"s3://fleet-locks/k\"\n", ""), "t".as_ref()).unwrap();
        assert!(fleet_list(&none, 0).is_none(), "no list configured: no check");
        assert!(ssf_tokens(&none).is_none());
        let token = dir.join("token");
        let with_ssf = format!(
            "{text}[[locks.ssf]]\nissuer = \"https://idp.test\"\npoll_url = \"https://idp.test/poll\"\n\
             audience = \"h\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        let cfg = Config::parse(&with_ssf, "t".as_ref()).unwrap();
        assert!(ssf_tokens(&cfg).unwrap().unwrap_err().0.contains("token_file"), "missing");
        std::fs::write(&token, "t").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(ssf_tokens(&cfg).unwrap().unwrap_err().0.contains("mode 640"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! `helperd doctor`'s fleet lock list check: when helperd last got a good
//! list (from the status file its poller writes after every poll).

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
        let _ = std::fs::remove_dir_all(&dir);
    }
}

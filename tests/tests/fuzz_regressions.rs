//! Replays every input under fuzz/regressions/<target>/ (crashes the fuzzer
//! found, kept after the fix) and every seed through the same harness the
//! cargo-fuzz targets run (fuzz/harness.rs). Also checks the seeds reach the
//! deep paths they are meant to (a valid token verifies, a snapshot parses).
//!
//! `FUZZ_SEEDS_OUT=DIR cargo test -p integration --test fuzz_regressions` writes
//! the seeds to DIR/<target>/ (scripts/fuzz uses it to start its corpus).

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;

fn regressions_dir() -> PathBuf {
    integration::root().join("fuzz/regressions")
}

#[test]
fn every_saved_fuzz_finding_stays_fixed() {
    let mut n = 0;
    for t in harness::TARGETS {
        let dir = regressions_dir().join(t);
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            eprintln!("replaying {}", p.display());
            harness::run(t, &data);
            n += 1;
        }
    }
    eprintln!("{n} saved findings replayed");
}

#[test]
fn seeds_run_clean_and_reach_the_deep_paths() {
    let out = std::env::var_os("FUZZ_SEEDS_OUT").map(PathBuf::from);
    for t in harness::TARGETS {
        let seeds = harness::seeds(t);
        assert!(seeds.len() >= 2, "{t}: {} seeds", seeds.len());
        for (i, s) in seeds.iter().enumerate() {
            harness::run(t, s);
            if let Some(o) = &out {
                std::fs::create_dir_all(o.join(t)).unwrap();
                std::fs::write(o.join(t).join(format!("seed-{i}")), s).unwrap();
            }
        }
    }
    // The token seeds signed with the issuer's keys verify (the harness is not
    // refusing everything for lack of a valid path), and so do the claim seeds.
    let token = harness::seeds("token");
    assert!(token.len() >= 4);
    for t in &token[..4] {
        assert!(harness::accepted(std::str::from_utf8(t).unwrap()), "seed token refused");
    }
    for c in harness::seeds("token_claims").iter().take(2) {
        assert!(harness::claims_accepted(c), "seed claims refused");
    }
    for s in harness::seeds("snapshot") {
        assert!(nss_snapshot::reader::Snapshot::parse(&s).is_ok());
    }
    for s in harness::seeds("config") {
        assert!(oidc_core::Config::parse(std::str::from_utf8(&s).unwrap(), "c.toml".as_ref()).is_ok());
    }
    for s in harness::seeds("ipc").iter().take(6) {
        assert!(harness::ipc_decodes(s), "ipc seed does not decode: {}", String::from_utf8_lossy(s));
    }
}

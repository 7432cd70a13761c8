//! `pam-oidc-askpass` (packaging/, a POSIX sh script) speaks the module's
//! continuation protocol (`pam_oidc::prompt`): run against the prompts the
//! module really sends, its answers reassemble the token exactly — as an
//! askpass program (one prompt per call) and with `--lines` (all parts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use pam_oidc::prompt::{part_of, read_token, MAX_PARTS};
use std::process::Command;

fn askpass() -> Command {
    let mut c = Command::new("sh");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/pam-oidc-askpass"));
    c
}

fn long_token() -> String {
    let mut claims = alice();
    claims["pad"] = "x".repeat(2300).into();
    sign(&claims)
}

#[test]
fn askpass_answers_every_prompt_of_the_module() {
    let token = long_token();
    for chunk in ["100", "500", "4000"] {
        let t = token.clone();
        let mut p = Fake {
            answer: Some(Box::new(move |prompt| {
                let out = askpass().arg(prompt).env("OIDC_TOKEN", &t).env("OIDC_TOKEN_CHUNK", chunk).output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                Some(String::from_utf8(out.stdout).unwrap())
            })),
            ..Default::default()
        };
        let got = read_token(&mut p, "OIDC token: ", 65536).unwrap();
        assert_eq!(got.expose(), token, "chunk {chunk}");
        let parts = token.len().div_ceil(chunk.parse::<usize>().unwrap());
        assert_eq!(p.prompts.len(), parts, "chunk {chunk}");
        // Every prompt after the first is one the protocol names as part N.
        for (i, prompt) in p.prompts.iter().enumerate().skip(1) {
            assert_eq!(part_of(prompt), Some(i + 1));
        }
        assert!(parts <= MAX_PARTS);
    }
}

#[test]
fn askpass_lines_feed_a_stdin_reader() {
    let token = long_token();
    let out = askpass().arg("--lines").env("OIDC_TOKEN", &token).output().unwrap();
    let mut lines: std::collections::VecDeque<String> =
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    let mut p = Fake { answer: Some(Box::new(move |_| lines.pop_front())), ..Default::default() };
    assert_eq!(read_token(&mut p, "OIDC token: ", 65536).unwrap().expose(), token);
    // An unrelated prompt (a device-code "press Enter") gets an empty answer.
    let out = askpass().arg("Press Enter: ").env("OIDC_TOKEN", &token).output().unwrap();
    assert_eq!(out.stdout, b"\n");
}

//! The continuation prompt protocol, in one place: a reply that ends in `\`
//! means more follows, and part N is asked for with [`part_prompt`]`(N)`
//! ("OIDC token (part N): "). `pam-oidc-askpass` answers these prompts
//! (`packaging/pam-oidc-askpass`; `tests/askpass.rs` runs it against this
//! module). This carries tokens of any size through sudo (replies under 512
//! bytes), ssh askpass (1023) and terminals (4095-byte lines).

use crate::handle::Pam;
use oidc_core::{Rejection, Secret};

/// Most parts a token may come in (64 × 1000 bytes > any size cap we accept).
pub const MAX_PARTS: usize = 64;

/// Reply lengths at which common clients cut a longer reply (sudo, ssh
/// askpass, terminals): a failing token of exactly this length gets a hint.
pub const CUT_LENGTHS: [usize; 6] = [511, 512, 1023, 1024, 4095, 4096];

/// The prompt for part `n` (2 and up; part 1 is the configured prompt).
pub fn part_prompt(n: usize) -> String {
    format!("OIDC token (part {n}): ")
}

/// The part a prompt asks for: `Some(n)` for a continuation prompt.
pub fn part_of(prompt: &str) -> Option<usize> {
    let rest = prompt.split("(part ").nth(1)?;
    rest.split(')').next()?.parse().ok().filter(|n| (2..=MAX_PARTS).contains(n))
}

/// Does a PAM_AUTHTOK look like a compact JWS (and not someone's password)?
pub fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|&b| b == b'.').count() == 2
}

/// Prompt for a token, following the continuation protocol, into one buffer
/// of `max_bytes` that is wiped on drop (no reallocation leaves a freed copy
/// of part of the token behind).
pub fn read_token(pam: &mut dyn Pam, first_prompt: &str, max_bytes: usize) -> Result<Secret, Rejection> {
    let mut token = zeroize::Zeroizing::new(String::with_capacity(max_bytes));
    for part in 1..=MAX_PARTS {
        let prompt = if part == 1 { first_prompt.to_string() } else { part_prompt(part) };
        let reply = match pam.prompt_secret(&prompt) {
            Ok(Some(t)) => t,
            Ok(None) => Secret::default(),
            Err(rc) => return Err(Rejection::NoToken(format!("conversation failed at part {part} ({rc:?})"))),
        };
        let piece = reply.expose().trim();
        let (piece, more) = match piece.strip_suffix('\\') {
            Some(p) => (p.trim_end(), true),
            None => (piece, false),
        };
        if token.len() + piece.len() > max_bytes {
            return Err(Rejection::Oversize { len: token.len() + piece.len(), max: max_bytes });
        }
        token.push_str(piece);
        if !more {
            return if token.is_empty() {
                Err(Rejection::NoToken("empty reply".into()))
            } else {
                Ok(Secret::new(std::mem::take(&mut *token)))
            };
        }
    }
    Err(Rejection::NoToken(format!("more than {MAX_PARTS} parts")))
}

/// The hint for a token that failed at a length where clients cut replies.
pub fn cut_hint(len: usize) -> Option<String> {
    CUT_LENGTHS.contains(&len).then(|| {
        format!(
            "; the reply is exactly {len} bytes: the client probably cut a longer token — send it in \
             parts (continuation protocol: pam-oidc-askpass)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_prompts_round_trip() {
        for n in 2..=MAX_PARTS {
            assert_eq!(part_of(&part_prompt(n)), Some(n));
        }
        assert_eq!(part_of("OIDC token: "), None);
        assert_eq!(part_of("OIDC token (part 1): "), None);
        assert_eq!(part_of("OIDC token (part 65): "), None);
        assert_eq!(part_of("OIDC token (part x): "), None);
    }
}

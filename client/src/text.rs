//! Text from elsewhere (a server's prompt, an IdP's answer) on the user's
//! terminal: control characters shown, not obeyed. An escape sequence in a
//! prompt or an `error_description` could otherwise retitle the window,
//! rewrite what was printed before it, or fake a prompt of this program.

/// `s` with every control character (C0 but newline and tab, DEL, C1) and
/// every bidirectional override or isolate written as `\u{..}`.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi =
            matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n' && c != '\t') || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_overrides_are_shown_not_obeyed() {
        assert_eq!(visible("OIDC token: "), "OIDC token: ");
        assert_eq!(visible("a\x1b]0;owned\x07b"), "a\\u{1b}]0;owned\\u{7}b");
        assert_eq!(visible("line\r\x1b[2KPassword: "), "line\\u{d}\\u{1b}[2KPassword: ");
        assert_eq!(visible("x\u{9b}31m y\u{202e}gpj.exe"), "x\\u{9b}31m y\\u{202e}gpj.exe");
        assert_eq!(visible("a\u{61c}b"), "a\\u{61c}b");
        assert_eq!(visible("two\nlines\tand tab, café"), "two\nlines\tand tab, café");
    }
}

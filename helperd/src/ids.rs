//! Random identifiers (device flow ids, login ids) and secret bytes, from
//! the kernel's getrandom(2). `None` when no randomness is available: the
//! caller refuses rather than use a guessable id.

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut b = [0u8; N];
    // SAFETY: valid buffer of b.len() bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    (usize::try_from(n).ok() == Some(b.len())).then_some(b)
}

/// Bytes as lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 128 random bits, hex (a flow id or a login id).
pub fn random_id() -> Option<String> {
    random_bytes::<16>().map(|b| hex(&b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_128_bits_of_hex_and_differ() {
        let (a, b) = (super::random_id().unwrap(), super::random_id().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}

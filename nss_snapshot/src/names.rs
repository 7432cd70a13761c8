//! Name rules shared by the writer, the reader and `oidc_core`: wildcard
//! matching, portable names, their skeletons and the names a host reserves.

/// Glob match with `*` (any run) and `?` (one byte); iterative, O(len(p)·len(s)).
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    wildcard(p, s, true)
}

/// `*` matches any run; with `single`, `?` matches one byte; every other
/// byte only itself. Iterative, O(len(p)·len(s)).
pub fn wildcard(p: &[u8], s: &[u8], single: bool) -> bool {
    let (mut pi, mut si, mut star, mut mark) = (0usize, 0usize, usize::MAX, 0usize);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && ((single && p[pi] == b'?') || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = pi;
            mark = si;
            pi += 1;
        } else if star != usize::MAX {
            pi = star + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// The longest login name a token may make (shadow-utils' default).
pub const MAX_LOGIN_NAME: usize = 32;

/// Portable login name as shadow-utils accepts by default:
/// `[a-z_][a-z0-9_.-]*` (a trailing `$` is not allowed: no machine accounts),
/// at most [`MAX_LOGIN_NAME`] bytes. No upper case, `:`, `/`, spaces or
/// control characters. The one home of this rule: the module's name check and
/// the NSS reader both use it.
pub fn portable_name(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= MAX_LOGIN_NAME
        && (n[0].is_ascii_lowercase() || n[0] == b'_')
        && n.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
}

/// The comparison form of a name: ASCII letters and digits only, lower case.
/// `Ad-Min`, `ADMIN` and `a.d.m.i.n` all become `admin`: two names with the
/// same skeleton are the same name to a human reading sudoers or `ls -l`.
pub fn skeleton(n: &[u8]) -> Vec<u8> {
    n.iter().filter(|c| c.is_ascii_alphanumeric()).map(u8::to_ascii_lowercase).collect()
}

/// Names (compared by [`skeleton`]) a token may never produce as a user,
/// private group or group: privileged or meaningful on Linux hosts whether or
/// not the local account exists yet (sudoers, polkit and packages name them).
pub const RESERVED: &[&str] = &[
    "root",
    "toor",
    "admin",
    "admins",
    "administrator",
    "administrators",
    "wheel",
    "sudo",
    "sudoers",
    "adm",
    "docker",
    "lxd",
    "libvirt",
    "libvirt-qemu",
    "kvm",
    "disk",
    "shadow",
    "staff",
    "systemd",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "nfsnobody",
    "tty",
    "dialout",
    "fax",
    "voice",
    "cdrom",
    "floppy",
    "tape",
    "audio",
    "dip",
    "video",
    "plugdev",
    "users",
    "input",
    "render",
    "sgx",
    "netdev",
    "kmem",
    "operator",
    "src",
    "utmp",
    "sasl",
    "ssh",
    "sshd",
    "messagebus",
    "polkitd",
    "polkituser",
    "crontab",
    "syslog",
    "uuidd",
    "tcpdump",
    "tss",
    "landscape",
    "pollinate",
    "chrony",
    "_chrony",
    "ntp",
    "postfix",
    "postdrop",
    "dnsmasq",
    "ec2-user",
    "ubuntu",
    "debian",
    "centos",
    "fedora",
    "cloud-user",
    "ssm-user",
    "rocky",
    "almalinux",
    "ec2-instance-connect",
    "lpadmin",
    "sambashare",
    "bluetooth",
    "scanner",
    "ftp",
    "http",
    "nginx",
    "apache",
    "postgres",
    "mysql",
    "redis",
    "git",
    "jenkins",
    "pam-oidc",
    "oidc",
    "helperd",
    "mlocate",
    "plocate",
    "dbus",
    "avahi",
    "rtkit",
    "geoclue",
    "colord",
    "saned",
    "usbmux",
    "whoopsie",
    "kernoops",
    "pulse",
    "lightdm",
    "gdm",
    "sddm",
    "nm-openvpn",
    "openvpn",
    "unbound",
    "named",
    "bind",
    "rpc",
    "rpcuser",
    "statd",
    "_rpc",
    "nslcd",
    "sssd",
    "ldap",
    "openldap",
    "kanidm",
    "kanidmd",
    "authd",
    "himmelblau",
    "cockpit-ws",
    "cockpit-wsinstance",
    "setroubleshoot",
    "unprivileged",
    "guest",
    "test",
    "user",
];

/// Skeleton prefixes that are reserved as a family (`systemd-*`, `nvidia-*`,
/// `polkitd`); names starting with `_` (Debian's `_apt`, `_chrony`) are too.
pub const RESERVED_PREFIXES: &[&str] = &["systemd", "nvidia", "polkit"];

/// Is `name` (any case or punctuation) reserved on the host?
pub fn is_reserved(name: &[u8]) -> bool {
    if name.first() == Some(&b'_') {
        return true; // Debian and BSD system users: _apt, _chrony, _rpc ...
    }
    let sk = skeleton(name);
    if sk.is_empty() {
        return true;
    }
    // Each reserved name's skeleton compared as it is read (no allocation:
    // this runs for every name a login maps, in the module and in helperd).
    let skel = |n: &'static str| n.bytes().filter(u8::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase());
    RESERVED.iter().any(|r| skel(r).eq(sk.iter().copied()))
        || RESERVED_PREFIXES.iter().any(|p| sk.starts_with(p.as_bytes()))
}

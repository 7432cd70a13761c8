//! doctor's IMDS check: with `[aws]` instance roles, only root may reach the
//! instance metadata service (probed as uid 65534 from a forked child).

use super::{fail, Outcome};
use oidc_core::Config;

/// With `[aws]` on the instance role, helperd hands each session scoped
/// credentials. If any local user can reach IMDS, they read the instance
/// role's own (broader) credentials directly: probe as an unprivileged uid.
pub(super) fn imds(cfg: &Config) -> Outcome {
    use oidc_core::AwsSource as Source;
    if !cfg.aws.roles.iter().any(|r| r.source == Source::Instance) {
        return Ok("no [[aws.role]] uses the instance role".into());
    }
    let ep = &cfg.aws.imds_endpoint;
    let fix = "let only root (helperd) reach IMDS: `systemctl enable --now pam-oidc-imds-lockdown` (the package's \
               nftables table inet pam_oidc_imds, /usr/lib/pam-oidc/pam-oidc-imds.nft: sockets of any uid but 0 \
               are refused at 169.254.169.254 and fd00:ec2::254); or use source = \"web_identity\" roles only";
    let hostport = ep.strip_prefix("http://").unwrap_or(ep).split('/').next().unwrap_or("");
    let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = match std::net::ToSocketAddrs::to_socket_addrs(&hostport).ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => {
            return fail(
                format!("aws.imds_endpoint {ep}: not an http://IP[:PORT] address to probe"),
                "set aws.imds_endpoint to http://169.254.169.254 (or http://[fd00:ec2::254])",
            )
        }
    };
    match probe_as_nobody(addr) {
        Err(e) => fail(format!("cannot probe IMDS as an unprivileged user: {e}"), "run `helperd doctor` as root"),
        Ok(true) => fail(
            format!(
                "any local user (probed as uid 65534) can connect to IMDS at {addr} and read the instance role's \
                 credentials, bypassing the per-session roles"
            ),
            fix,
        ),
        Ok(false) => Ok(format!("IMDS at {addr} refuses uid 65534 (only root reaches the instance role)")),
    }
}

/// Can uid/gid 65534 open a TCP connection to `addr` (2 s)? The child only
/// makes system calls on memory prepared before the fork.
fn probe_as_nobody(addr: std::net::SocketAddr) -> Result<bool, String> {
    use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike};
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let (v4, v6);
    let (sa, len, family): (*const libc::sockaddr, libc::socklen_t, libc::c_int) = match addr {
        std::net::SocketAddr::V4(a) => {
            v4 = SockaddrIn::from(a);
            (v4.as_ptr(), v4.len(), libc::AF_INET)
        }
        std::net::SocketAddr::V6(a) => {
            v6 = SockaddrIn6::from(a);
            (v6.as_ptr(), v6.len(), libc::AF_INET6)
        }
    };
    // SAFETY: the child calls only async-signal-safe functions (setgroups,
    // setgid, setuid, socket, connect, poll, getsockopt, _exit) on data that
    // lives in this frame, and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let nobody: libc::gid_t = 65534;
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(nobody) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(3);
            }
            let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                libc::_exit(3);
            }
            if libc::connect(fd, sa, len) == 0 {
                libc::_exit(0);
            }
            if *libc::__errno_location() != libc::EINPROGRESS {
                libc::_exit(1);
            }
            let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
            if libc::poll(&mut p, 1, 2000) != 1 {
                libc::_exit(1);
            }
            let mut err: libc::c_int = 0;
            let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let ok =
                libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut err as *mut libc::c_int).cast(), &mut l)
                    == 0
                    && err == 0;
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for (reaps) the child forked above.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err("probe process failed".into());
    }
    if !libc::WIFEXITED(status) {
        return Err("probe process failed".into());
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(true),
        1 => Ok(false),
        _ => Err("could not become uid 65534".into()),
    }
}

//! TCP_NODELAY on the PostgreSQL pool's sockets.
//!
//! sqlx 0.9.0 connects without TCP_NODELAY (launchbadge/sqlx#4335, fixed upstream after
//! 0.9.0). A statement larger than a new socket's 16 KiB send buffer then leaves in two
//! segments, and Nagle's algorithm holds the second until the server's delayed ACK, 40 ms
//! later: a batch of sends, or one long message, took 40 ms instead of one. sqlx does not
//! hand out its socket, so after each new connection this sets the option on every TCP socket
//! of the process whose peer listens on the database's port. Setting it twice is harmless.

#[cfg(target_os = "linux")]
use std::os::fd::RawFd;

/// Disables Nagle's algorithm on each of this process's TCP sockets connected to `port`.
#[cfg(target_os = "linux")]
pub fn set_on_sockets_to(port: u16) -> std::io::Result<()> {
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(fd) = entry?.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        if peer_port(fd) == Some(port) {
            let on: libc::c_int = 1;
            // SAFETY: `fd` is open (listed just now); setsockopt reads `on` for its size.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&raw const on).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
    Ok(())
}

/// Elsewhere the pool keeps sqlx's sockets as they are.
#[cfg(not(target_os = "linux"))]
pub fn set_on_sockets_to(_port: u16) -> std::io::Result<()> {
    Ok(())
}

/// The remote port of a connected IPv4 or IPv6 socket; `None` for anything else.
#[cfg(target_os = "linux")]
fn peer_port(fd: RawFd) -> Option<u16> {
    // SAFETY: an all-zero sockaddr_storage is valid; getpeername writes at most `len` bytes
    // into it and fails harmlessly (ENOTSOCK, ENOTCONN) on descriptors that are not sockets.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let found = unsafe { libc::getpeername(fd, (&raw mut address).cast(), &mut len) } == 0;
    if !found {
        return None;
    }
    match libc::c_int::from(address.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let v4: libc::sockaddr_in = unsafe { std::ptr::read((&raw const address).cast()) };
            Some(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let v6: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const address).cast()) };
            Some(u16::from_be(v6.sin6_port))
        }
        _ => None,
    }
}

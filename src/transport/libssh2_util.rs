//! What the session, its exec channels and the jump-host bridge share about libssh2: the
//! error codes they tell apart and the socket's quick-ACK tweak.

use ssh2::ErrorCode;

// libssh2 error codes (libssh2.h).
pub(crate) const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
pub(crate) const LIBSSH2_ERROR_CHANNEL_CLOSED: i32 = -26;
pub(crate) const LIBSSH2_ERROR_CHANNEL_EOF_SENT: i32 = -27;
pub(crate) const LIBSSH2_ERROR_EAGAIN: i32 = -37;

pub(crate) fn code_of(e: &ssh2::Error) -> i32 {
    match e.code() {
        ErrorCode::Session(c) => c,
        ErrorCode::SFTP(c) => c,
    }
}

pub(crate) fn is_eagain(e: &ssh2::Error) -> bool {
    code_of(e) == LIBSSH2_ERROR_EAGAIN
}

/// Ask Linux to ACK the next incoming segments at once instead of delaying the ACK (up to
/// 40 ms). sshd does not set TCP_NODELAY on non-interactive sessions, so it holds back its
/// next small packet (exec reply, exit-status, EOF, CLOSE) until our ACK: with delayed ACKs
/// every exec would stall ~40 ms per burst. The kernel drops out of quick-ACK mode by itself,
/// so this is re-armed before each wait.
pub(crate) fn set_quickack(fd: i32) {
    #[cfg(target_os = "linux")]
    unsafe {
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

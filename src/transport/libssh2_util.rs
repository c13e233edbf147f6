//! What the session, its exec channels and the jump-host bridge share about libssh2: the
//! error codes they tell apart, the socket's quick-ACK tweak, and giving back the pages of a
//! new session that it zeroed and may never use.

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

/// libssh2 zeroes the whole of a new session (83 KiB, most of it two packet buffers of
/// 35 KB held inline), which makes every page of it resident for the life of the session,
/// 40 MB at 500 hosts; a session mostly writes the first few kilobytes of each buffer (its
/// packets are small). Right after `Session::new`, the pages lying wholly inside the
/// session's allocation that are all zeros are given back (`MADV_DONTNEED` on private
/// anonymous memory: they read as zeros again, and only a page libssh2 later writes becomes
/// resident). Nothing changes for libssh2: the memory reads exactly as before.
pub(crate) fn release_zero_pages(session: &ssh2::Session) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let raw = session.raw();
        let start = (&*raw as *const _) as *mut libc::c_void;
        drop(raw);
        // SAFETY: `start` is the block libssh2's default allocator (malloc) returned for the
        // session, alive while `session` is; only pages within its usable size (less a margin
        // for the allocator's next header) are read and advised, and no other thread uses the
        // session yet, so a page seen all zeros stays so until the advice.
        unsafe {
            let len = libc::malloc_usable_size(start).saturating_sub(16);
            let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
            let base = start as usize;
            let mut p = base.div_ceil(page) * page;
            while p + page <= base + len {
                let bytes = std::slice::from_raw_parts(p as *const u8, page);
                if bytes.iter().all(|&b| b == 0) {
                    libc::madvise(p as *mut libc::c_void, page, libc::MADV_DONTNEED);
                }
                p += page;
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = session;
}

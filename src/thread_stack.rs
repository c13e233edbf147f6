//! Giving back the deep pages of a host thread's stack while it waits.
//!
//! A host's thread renders its templates (minijinja's evaluator runs some 30 KiB deep) and
//! then spends most of its life waiting: for a remote command, or idle in the pool once its
//! host is done until the run ends. The pages its deepest calls touched stay resident for as
//! long as the thread lives, 15 MiB for a fleet of 500 with one thread per host. Everything
//! below the stack pointer is free by the ABI, so before such a wait the pages lying wholly
//! below the current frame (less a margin for the calls made from here) are given back with
//! `MADV_DONTNEED`: a later call that reaches them gets fresh zeroed pages, as it would on a
//! new thread. glibc does the same to a thread's stack when the thread exits.

/// Kept below the local whose address stands for the stack pointer: room for the rest of
/// this frame and the `madvise` wrapper's, the only frames below it while the advice is
/// given (a signal frame pushed later just faults fresh pages in).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MARGIN: usize = 4 * 1024;

pub(crate) fn release_unused() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::cell::Cell;
        thread_local! {
            // The lowest usable address of this thread's stack; 0 for a thread this does not
            // touch (the main thread, whose stack grows on demand and has no fixed bottom).
            static LOWEST: Cell<Option<usize>> = const { Cell::new(None) };
        }
        let lowest = LOWEST.with(|l| match l.get() {
            Some(v) => v,
            None => {
                let v = stack_lowest().unwrap_or(0);
                l.set(Some(v));
                v
            }
        });
        if lowest == 0 {
            return;
        }
        let here = 0u8;
        let here = std::hint::black_box(&here) as *const u8 as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let end = here.saturating_sub(MARGIN) / page * page;
        if end > lowest {
            // SAFETY: [lowest, end) lies inside this thread's own stack mapping and below
            // every live frame (this one's lowest local is above `end + MARGIN`); private
            // anonymous pages so advised read as zeros again, which no one relies on.
            unsafe {
                libc::madvise(
                    lowest as *mut libc::c_void,
                    end - lowest,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn stack_lowest() -> Option<usize> {
    // SAFETY: plain syscalls.
    if unsafe { libc::gettid() == libc::getpid() } {
        return None;
    }
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read, and destroyed
    // once; the stack address it reports is this thread's (glibc: above the guard page).
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        (ok && !addr.is_null() && size > 0).then_some(addr as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page deep in the stack touched by a deep call is resident before and given back
    /// after; the thread then goes on and recurses as deep again without harm.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn deep_stack_pages_are_given_back_and_can_be_used_again() {
        fn deep(n: usize) -> u64 {
            let buf = std::hint::black_box([n as u8; 1024]);
            if n == 0 {
                return buf[0] as u64;
            }
            deep(n - 1) + buf[1] as u64
        }
        fn resident(addr: usize) -> bool {
            let page = 4096;
            let mut v = 0u8;
            // SAFETY: one page of this thread's stack mapping, one byte of result.
            unsafe { libc::mincore((addr / page * page) as *mut libc::c_void, page, &mut v) };
            v & 1 == 1
        }
        std::thread::spawn(|| {
            let top = 0u8;
            let top = std::hint::black_box(&top) as *const u8 as usize;
            assert_eq!(deep(200), (1..=200).sum::<u64>());
            // 200 frames of over 1 KiB each: 100 KiB below here was written.
            let probe = top - 100 * 1024;
            assert!(resident(probe));
            release_unused();
            assert!(!resident(probe));
            assert_eq!(deep(200), (1..=200).sum::<u64>());
            assert!(resident(probe));
        })
        .join()
        .unwrap();
    }
}

fn main() {
    // Die quietly on a closed pipe (`bootstrapctl ... | head`), as command-line tools do,
    // instead of panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(bootstrapctl::run(std::env::args().collect()));
}

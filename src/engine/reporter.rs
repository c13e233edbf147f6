//! The `Reporter` trait: how the engine tells whoever listens how a run goes. The engine owns
//! it, so the engine never depends on the terminal; report/ implements it.

use super::result::TaskResult;

/// Called by the engine as the run goes; implementations must be cheap and thread-safe.
pub trait Reporter: Send + Sync {
    fn play_start(&self, play: &str, hosts: usize);
    fn task_start(&self, host: &str, task: &str);
    fn task_done(&self, result: &TaskResult);
    /// A host finished the play (its spinner can go).
    fn host_done(&self, _host: &str) {}
    fn play_done(&self, play: &str);
    /// An upload to `host` of artifact `what` has sent `sent` of `total` bytes.
    fn transfer(&self, _host: &str, _what: &str, _sent: u64, _total: u64) {}
    /// Stop drawing before the final output.
    fn finish(&self) {}
}

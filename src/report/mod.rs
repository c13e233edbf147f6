//! Output: progress while running (indicatif on a terminal, plain lines otherwise), diffs
//! grouped across hosts, the recap table and the JSON report. Everything passes the redactor.

pub mod diff;
pub mod json;
pub mod live;
pub mod recap;

pub use live::{PlainReporter, ProgressReporter, QuietReporter};

use crate::engine::result::TaskResult;

/// Called by the engine as the run goes; implementations must be cheap and thread-safe.
pub trait Reporter: Send + Sync {
    fn play_start(&self, play: &str, hosts: usize);
    fn task_start(&self, host: &str, task: &str);
    fn task_done(&self, result: &TaskResult);
    /// A host finished the play (its spinner can go).
    fn host_done(&self, _host: &str) {}
    fn play_done(&self, play: &str);
    /// Stop drawing before the final output.
    fn finish(&self) {}
}

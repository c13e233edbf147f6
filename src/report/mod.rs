//! Output: progress while running (indicatif on a terminal, plain lines otherwise), diffs
//! grouped across hosts, the recap table and the JSON report. Everything passes the redactor.
//! report/ implements the engine's `Reporter` and reads the engine's results; the engine never
//! imports from here.

pub mod diff;
pub mod json;
pub mod live;
pub mod recap;

pub use live::{PlainReporter, ProgressReporter, QuietReporter};

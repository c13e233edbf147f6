//! Live reporters: plain lines when output is not a terminal, indicatif bars when it is.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::reporter::Reporter;
use crate::engine::result::{TaskResult, TaskStatus};
use crate::secret::Redactor;

/// One line per task result; `verbose` adds ok/skipped lines with their reason.
pub struct PlainReporter {
    redactor: Arc<Redactor>,
    verbose: u8,
    out: Mutex<Box<dyn Write + Send>>,
    /// The play last started: a result of an earlier one (its batch applied with this
    /// play's) names its play.
    play: Mutex<String>,
}

impl PlainReporter {
    pub fn new(redactor: Arc<Redactor>, verbose: u8) -> Self {
        PlainReporter {
            redactor,
            verbose,
            out: Mutex::new(Box::new(std::io::stdout())),
            play: Mutex::new(String::new()),
        }
    }
    fn line(&self, s: &str) {
        let mut out = self.out.lock().expect("stdout");
        let _ = writeln!(out, "{}", self.redactor.redact(s));
        let _ = out.flush();
    }
}

pub fn result_line(r: &TaskResult, verbose: u8) -> Option<String> {
    let handler = if r.handler { "handler " } else { "" };
    match r.status {
        TaskStatus::Changed => Some(format!("changed: [{}] {handler}{}", r.host, r.task)),
        TaskStatus::Failed => Some(format!(
            "failed: [{}] {handler}{}: {}{}",
            r.host,
            r.task,
            r.msg,
            if r.ignored {
                " ...ignoring"
            } else if r.rescued {
                " (rescued)"
            } else {
                ""
            }
        )),
        TaskStatus::Unreachable => Some(format!("unreachable: [{}] {}: {}", r.host, r.task, r.msg)),
        TaskStatus::Ok if verbose > 0 => {
            Some(format!("ok: [{}] {handler}{} ({})", r.host, r.task, r.msg))
        }
        TaskStatus::Skipped if verbose > 0 => Some(format!(
            "skipping: [{}] {handler}{} ({})",
            r.host, r.task, r.msg
        )),
        _ => None,
    }
}

impl Reporter for PlainReporter {
    fn play_start(&self, play: &str, hosts: usize) {
        *self.play.lock().expect("play") = play.to_string();
        self.line(&format!("PLAY [{play}] on {hosts} host(s)"));
    }
    fn task_start(&self, host: &str, task: &str) {
        if self.verbose > 1 {
            self.line(&format!("start: [{host}] {task}"));
        }
    }
    fn task_done(&self, r: &TaskResult) {
        if let Some(l) = result_line(r, self.verbose) {
            if *self.play.lock().expect("play") == r.play {
                self.line(&l);
            } else {
                self.line(&format!("{l} (play [{}])", r.play));
            }
        }
    }
    fn play_done(&self, _play: &str) {}
}

/// An overall bar plus one spinner line per active host showing its current task.
pub struct ProgressReporter {
    redactor: Arc<Redactor>,
    multi: MultiProgress,
    overall: Mutex<Option<ProgressBar>>,
    hosts: Mutex<HashMap<String, ProgressBar>>,
    tasks_per_host: usize,
}

impl ProgressReporter {
    pub fn new(redactor: Arc<Redactor>, tasks_per_host: usize) -> Self {
        ProgressReporter {
            redactor,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            overall: Mutex::new(None),
            hosts: Mutex::new(HashMap::new()),
            tasks_per_host,
        }
    }
}

impl Reporter for ProgressReporter {
    fn play_start(&self, play: &str, hosts: usize) {
        let bar = self.multi.add(ProgressBar::new(
            (hosts * self.tasks_per_host.max(1)) as u64,
        ));
        bar.set_style(
            ProgressStyle::with_template("{prefix:.bold} [{bar:40}] {pos}/{len} tasks {elapsed}")
                .expect("style")
                .progress_chars("=> "),
        );
        bar.set_prefix(self.redactor.redact(play));
        *self.overall.lock().expect("bar") = Some(bar);
    }
    fn task_start(&self, host: &str, task: &str) {
        let mut hosts = self.hosts.lock().expect("bars");
        let bar = hosts.entry(host.to_string()).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("  {spinner} {prefix}: {msg}").expect("style"),
            );
            b.set_prefix(host.to_string());
            b
        });
        bar.set_message(self.redactor.redact(task));
        bar.tick();
    }
    fn task_done(&self, r: &TaskResult) {
        if let Some(b) = self.overall.lock().expect("bar").as_ref() {
            b.inc(1);
        }
        if let Some(l) = result_line(r, 0) {
            let _ = self.multi.println(self.redactor.redact(&l));
        }
    }
    fn transfer(&self, host: &str, what: &str, sent: u64, total: u64) {
        if let Some(bar) = self.hosts.lock().expect("bars").get(host) {
            bar.set_message(format!(
                "uploading {what}: {} / {}",
                indicatif::HumanBytes(sent),
                indicatif::HumanBytes(total)
            ));
        }
    }
    fn host_done(&self, host: &str) {
        if let Some(b) = self.hosts.lock().expect("bars").remove(host) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
    }
    fn play_done(&self, _play: &str) {
        for (_, b) in self.hosts.lock().expect("bars").drain() {
            b.finish_and_clear();
        }
        if let Some(b) = self.overall.lock().expect("bar").take() {
            b.finish_and_clear();
        }
    }
    fn finish(&self) {
        let _ = self.multi.clear();
    }
}

/// Prints only failures: for commands whose output is their answer (`token list`).
pub struct QuietReporter {
    redactor: Arc<Redactor>,
}

impl QuietReporter {
    pub fn new(redactor: Arc<Redactor>) -> Self {
        QuietReporter { redactor }
    }
}

impl Reporter for QuietReporter {
    fn play_start(&self, _play: &str, _hosts: usize) {}
    fn task_start(&self, _host: &str, _task: &str) {}
    fn task_done(&self, r: &TaskResult) {
        if matches!(r.status, TaskStatus::Failed | TaskStatus::Unreachable) {
            if let Some(l) = result_line(r, 0) {
                eprintln!("{}", self.redactor.redact(&l));
            }
        }
    }
    fn play_done(&self, _play: &str) {}
}

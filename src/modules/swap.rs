//! `swap`: swap off now and its /etc/fstab lines commented out, as the kubelet requires.

use serde::Deserialize;

use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::flags::fstab::{active_swap_entries, comment_out_swap};
use crate::hoststate::{HostView, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::Tpl;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub state: Tpl<State>,
    pub fstab: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct Swap {
    fstab: String,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Swap, ModuleError> {
        let State::Off = self.state.resolve(cx.templates, cx.vars, cx.what)?;
        Ok(Swap {
            fstab: opt(&self.fstab, cx)?.unwrap_or_else(|| "/etc/fstab".into()),
        })
    }
}

impl Module for Swap {
    fn reads(&self) -> Vec<Read> {
        vec![Read::Swaps, Read::File(self.fstab.clone())]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let mut ops = Vec::new();
        let mut diffs = Vec::new();
        let active = view.active_swaps().unwrap_or_default();
        if !active.is_empty() {
            ops.push(Op::SwapOff);
            diffs.push(DiffItem {
                subject: "active swap".into(),
                before: active.join("\n") + "\n",
                after: String::new(),
                secret: false,
            });
        }
        if let Some(f) = view.file(&self.fstab).filter(|f| f.exists()) {
            let text =
                String::from_utf8_lossy(f.content.as_deref().unwrap_or_default()).into_owned();
            if !active_swap_entries(&text).is_empty() {
                let after = comment_out_swap(&text);
                ops.push(Op::WriteFile {
                    path: self.fstab.clone(),
                    content: after.clone().into_bytes(),
                    mode: f.mode,
                    owner: Some(f.owner.clone()),
                    group: Some(f.group.clone()),
                });
                diffs.push(DiffItem {
                    subject: self.fstab.clone(),
                    before: text,
                    after,
                    secret: false,
                });
            }
        }
        if ops.is_empty() {
            Ok(Planned::NoChange {
                reason: format!("no active swap and no swap line in {}", self.fstab),
            })
        } else {
            Ok(Planned::Change { ops, diffs })
        }
    }
}

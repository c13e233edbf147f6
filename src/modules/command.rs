//! `command` and `shell`: run a command unless `creates` exists or `removes` is absent.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::shell::quote as sh_quote;
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapArgs {
    cmd: Tpl<String>,
    creates: Option<Tpl<String>>,
    removes: Option<Tpl<String>>,
    chdir: Option<Tpl<String>>,
}

/// `command: some words` or `command: {cmd: …, creates: …, removes: …, chdir: …}`.
#[derive(Debug, Clone)]
pub struct Args(MapArgs);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Args, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command line, or a mapping with cmd, creates, removes, chdir")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Args, E> {
                let cmd = if crate::template::is_template(s) {
                    Tpl::Template(s.to_string())
                } else {
                    Tpl::Literal(s.to_string())
                };
                Ok(Args(MapArgs {
                    cmd,
                    creates: None,
                    removes: None,
                    chdir: None,
                }))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Args, E> {
                self.visit_str(&b.to_string())
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Args, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Args, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Args, A::Error> {
                MapArgs::deserialize(de::value::MapAccessDeserializer::new(map)).map(Args)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug)]
pub struct Command {
    command: String,
    creates: Option<String>,
    removes: Option<String>,
    chdir: Option<String>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>, shell: bool) -> Result<Command, ModuleError> {
        let raw = self.0.cmd.resolve(cx.templates, cx.vars, cx.what)?;
        let command = if shell {
            raw
        } else {
            // `command` runs without a shell: quote every word so none is interpreted.
            let words = shell_words::split(&raw)
                .map_err(|e| ModuleError::Invalid(format!("cmd: {e}: {raw}")))?;
            if words.is_empty() {
                return Err(ModuleError::Invalid("cmd: empty command".into()));
            }
            words
                .iter()
                .map(|w| sh_quote(w))
                .collect::<Vec<_>>()
                .join(" ")
        };
        Ok(Command {
            command,
            creates: opt(&self.0.creates, cx)?,
            removes: opt(&self.0.removes, cx)?,
            chdir: opt(&self.0.chdir, cx)?,
        })
    }
}

impl Module for Command {
    fn reads(&self) -> Vec<Read> {
        self.creates
            .iter()
            .chain(self.removes.iter())
            .map(|p| Read::File(p.clone()))
            .collect()
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let exists = |p: &str| view.file(p).map(|f| f.exists());
        if let Some(c) = &self.creates {
            if exists(c) == Some(true) {
                return Ok(Planned::NoChange {
                    reason: format!("{c} exists"),
                });
            }
        }
        if let Some(r) = &self.removes {
            if exists(r) == Some(false) {
                return Ok(Planned::NoChange {
                    reason: format!("{r} does not exist"),
                });
            }
        }
        Ok(Planned::Change {
            ops: vec![Op::Exec {
                command: self.command.clone(),
                chdir: self.chdir.clone(),
            }],
            diffs: vec![DiffItem {
                subject: "command".into(),
                before: String::new(),
                after: self.command.clone(),
                secret: false,
            }],
        })
    }

    fn runs_commands(&self) -> bool {
        true
    }
}

//! Reads a playbook file; every error names the file, line and column.

use std::path::{Path, PathBuf};

use super::model::{Play, Playbook};

#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error("cannot read playbook {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `FILE:LINE:COLUMN: MESSAGE`
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Load a playbook file, looking for roles in `roles/` beside it, then in `roles_path`.
pub fn load_with(path: &Path, roles_path: &[PathBuf]) -> Result<Playbook, PlaybookError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlaybookError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_roles(&text, path, roles_path)
}

pub fn parse(text: &str, path: &Path) -> Result<Playbook, PlaybookError> {
    parse_roles(text, path, &[])
}

fn parse_roles(text: &str, path: &Path, roles_path: &[PathBuf]) -> Result<Playbook, PlaybookError> {
    parse_full(text, path, roles_path, &|name: &str, base: &Path| {
        let p = base.parent().unwrap_or(Path::new(".")).join(name);
        std::fs::read_to_string(&p)
            .map(|t| (t, p.clone()))
            .map_err(|source| PlaybookError::Read { path: p, source })
    })
}

/// Where `import_playbook` finds the named playbook: (text, path for messages).
pub type Importer<'a> = &'a dyn Fn(&str, &Path) -> Result<(String, PathBuf), PlaybookError>;

pub fn parse_with(
    text: &str,
    path: &Path,
    import: Importer<'_>,
) -> Result<Playbook, PlaybookError> {
    parse_full(text, path, &[], import)
}

fn parse_full(
    text: &str,
    path: &Path,
    roles_path: &[PathBuf],
    import: Importer<'_>,
) -> Result<Playbook, PlaybookError> {
    let plays = expand(text, path, roles_path, import, 0)?;
    validate(&plays, path)?;
    Ok(Playbook { plays })
}

fn expand(
    text: &str,
    path: &Path,
    roles_path: &[PathBuf],
    import: Importer<'_>,
    depth: usize,
) -> Result<Vec<Play>, PlaybookError> {
    let invalid = |message: String| PlaybookError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if depth > 8 {
        return Err(invalid(
            "import_playbook nested more than 8 deep (an import cycle?)".into(),
        ));
    }
    let plays: Vec<Play> = serde_yaml::from_str(text).map_err(|e| yaml_error(path, text, &e))?;
    warn_integer_modes(path, text);
    let mut out = Vec::new();
    for (i, play) in plays.into_iter().enumerate() {
        match &play.import_playbook {
            Some(name) => {
                if !play.hosts.is_empty()
                    || !play.tasks.is_empty()
                    || !play.handlers.is_empty()
                    || !play.roles.is_empty()
                {
                    return Err(invalid(format!(
                        "entry {}: import_playbook stands alone (no hosts, tasks or handlers)",
                        i + 1
                    )));
                }
                let (t, p) = import(name, path)?;
                out.extend(expand(&t, &p, roles_path, import, depth + 1)?);
            }
            None if play.hosts.is_empty() => {
                return Err(invalid(format!("play {}: `hosts` is required", i + 1)));
            }
            None => {
                let mut play = play;
                play.source = path.to_path_buf();
                let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                super::expand::PlayLoad::new(dir, roles_path).play(&mut play)?;
                out.push(play);
            }
        }
    }
    Ok(out)
}

fn validate(plays: &[Play], path: &Path) -> Result<(), PlaybookError> {
    if plays.is_empty() {
        return Err(PlaybookError::Invalid {
            path: path.to_path_buf(),
            message: "the playbook has no plays".into(),
        });
    }
    for play in plays {
        let path = &play.source;
        if let Some(serial) = &play.serial {
            serial
                .batches(1)
                .map_err(|message| PlaybookError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("play {:?}: {message}", play.display_name()),
                })?;
        }
        let handlers = {
            let mut v = Vec::new();
            for h in &play.handlers {
                h.walk(&mut v);
            }
            v
        };
        for task in play.all_tasks() {
            for n in &task.notify {
                let known = handlers.iter().any(|h| {
                    h.name.as_deref() == Some(n.as_str())
                        || h.listen.contains(n)
                        || h.display_name() == *n
                });
                if !known {
                    return Err(PlaybookError::Invalid {
                        path: path.to_path_buf(),
                        message: format!(
                            "task {:?} notifies {n:?}, but play {:?} has no handler of that name",
                            task.display_name(),
                            play.display_name()
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The deliberate divergence from Ansible, said at load time: an unquoted `mode: 644` is a
/// YAML integer, which Ansible applies as the decimal number 644 (mode 01204); bootstrapctl
/// reads the digits as octal (0644), as their writer meant. Returns the warnings.
pub fn integer_mode_warnings(path: &Path, text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"(^|[\s{,])mode:\s*([1-7][0-7]{2,3})\s*($|[,}#])")
        .expect("static regex");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = re.captures(line) {
            let m = c.get(2).expect("group");
            out.push(format!(
                "{}:{}:{}: mode: {} is a YAML integer: Ansible applies it as decimal {} (mode {:o}); bootstrapctl reads it as octal 0{}. Quote it (mode: \"0{}\") to mean the same under both",
                path.display(),
                i + 1,
                m.start() + 1,
                m.as_str(),
                m.as_str(),
                m.as_str().parse::<u32>().unwrap_or(0),
                m.as_str(),
                m.as_str()
            ));
        }
    }
    out
}

/// Print [`integer_mode_warnings`] on stderr.
pub fn warn_integer_modes(path: &Path, text: &str) {
    for w in integer_mode_warnings(path, text) {
        eprintln!("warning: {w}");
    }
}

/// serde_yaml puts " at line L column C" at the end of its messages; we put it in front.
/// For an unknown key it gives the position of the mapping holding it: we point at the key.
pub fn yaml_error(path: &Path, source: &str, e: &serde_yaml::Error) -> PlaybookError {
    let text = e.to_string();
    match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let message = text.replacen(&suffix, "", 1);
            let message = message.strip_prefix('.').unwrap_or(&message).to_string();
            let (line, column) = unknown_key(&message)
                .and_then(|key| find_key(source, loc.line(), loc.column(), key))
                .unwrap_or((loc.line(), loc.column()));
            PlaybookError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        }
        None => PlaybookError::Invalid {
            path: path.to_path_buf(),
            message: text,
        },
    }
}

fn unknown_key(message: &str) -> Option<&str> {
    ["unknown field `", "unknown module or task keyword `"]
        .iter()
        .find_map(|p| message.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(key, _)| key)
}

/// The first `key:` at or after line/column (1-based) of `source`, as a YAML key token.
fn find_key(source: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    for (i, text) in source.lines().enumerate().skip(line.saturating_sub(1)) {
        let from = if i + 1 == line {
            column.saturating_sub(1)
        } else {
            0
        };
        let mut search = from;
        while let Some(pos) = text.get(search..).and_then(|t| t.find(key)) {
            let at = search + pos;
            let before = text[..at].chars().last();
            let after = text[at + key.len()..]
                .trim_start_matches(['"', '\''])
                .trim_start();
            let boundary = matches!(
                before,
                None | Some(' ' | '{' | ',' | '-' | '"' | '\'' | '\t')
            );
            if boundary && after.starts_with(':') {
                let quoted = matches!(before, Some('"' | '\''));
                return Some((i + 1, at + 1 - usize::from(quoted)));
            }
            search = at + key.len();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::BoolKw;

    fn err(text: &str) -> String {
        parse(text, Path::new("site.yaml")).unwrap_err().to_string()
    }

    #[test]
    fn loads_a_play_with_every_task_keyword() {
        let pb = parse(
            "- name: p\n  hosts: workers\n  serial: 30%\n  tasks:\n    - name: t\n      copy: {content: x, dest: /tmp/x, mode: '0600'}\n      when: a == 1\n      notify: h\n      register: r\n      loop: [1, 2]\n      tags: [a]\n  handlers:\n    - name: h\n      systemd: {name: kubelet, state: restarted}\n",
            Path::new("site.yaml"),
        )
        .unwrap();
        assert_eq!(pb.plays[0].tasks[0].module().unwrap().name(), "copy");
        assert_eq!(pb.plays[0].tasks[0].notify, vec!["h"]);
    }

    #[test]
    fn import_playbook_splices_plays_and_catches_cycles() {
        let import = |name: &str, _: &Path| -> Result<(String, PathBuf), PlaybookError> {
            let text = match name {
                "a.yaml" => "- hosts: a\n  tasks: [{command: 'true'}]\n",
                "loop.yaml" => "- import_playbook: loop.yaml\n",
                _ => "- hosts: [\n",
            };
            Ok((text.to_string(), PathBuf::from(name)))
        };
        let pb = parse_with(
            "- import_playbook: a.yaml\n- hosts: b\n  tasks: []\n",
            Path::new("site.yaml"),
            &import,
        )
        .unwrap();
        assert_eq!(
            pb.plays
                .iter()
                .map(|p| p.hosts.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(pb.plays[0].source, PathBuf::from("a.yaml"));
        let e = parse_with(
            "- import_playbook: loop.yaml\n",
            Path::new("site.yaml"),
            &import,
        )
        .unwrap_err();
        assert!(e.to_string().contains("nested more than 8 deep"), "{e}");
        let e = parse_with(
            "- import_playbook: bad.yaml\n",
            Path::new("site.yaml"),
            &import,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml:1:"), "{e}");
        let e =
            parse_with("- name: x\n  tasks: []\n", Path::new("site.yaml"), &import).unwrap_err();
        assert_eq!(e.to_string(), "site.yaml: play 1: `hosts` is required");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        assert_eq!(
            err("- hosts: all\n  tasks:\n    - name: x\n      copyy: {dest: /x}\n"),
            "site.yaml:4:7: [0].tasks[0]: unknown module or task keyword `copyy` (did you mean `copy`? modules: template, copy, file, command, shell, systemd, systemd_service, swap, kube_flags, kube_object, bootstrap_token, kube_wait, kube_csr_approve, kubelet_join_state, artifact, sysctl, modprobe, set_fact, include_vars, debug, assert, fail, service, lineinfile, stat, replace, blockinfile; keywords: name, when, changed_when, failed_when, until, retries, delay, notify, listen, register, delegate_to, run_once, no_log, ignore_errors, tags, loop, with_items, with_list, with_dict, loop_control, vars, become, become_user, check_mode, environment, diff, args, block, rescue, always, meta, import_tasks, include_tasks, import_role, include_role, debugger)"
        );
        assert_eq!(
            err("- hosts: all\n  tasks:\n    - copy: {dest: /x, content: y, mdoe: '0644'}\n"),
            "site.yaml:3:36: [0].tasks[0].copy: unknown field `mdoe`, expected one of `content`, `src`, `dest`, `mode`, `owner`, `group`, `force`"
        );
        assert_eq!(
            err("- hosts: all\n  tasks:\n    - systemd: {name: k, enabled: maybe}\n"),
            "site.yaml:3:35: [0].tasks[0].systemd.enabled: invalid type: string \"maybe\", expected a boolean"
        );
        assert_eq!(
            err("- hosts: all\n  taks: []\n"),
            "site.yaml:2:3: [0]: unknown field `taks`, expected one of `name`, `hosts`, `ansible.builtin.import_playbook`, `import_playbook`, `vars`, `vars_files`, `become`, `become_user`, `serial`, `max_fail_percentage`, `any_errors_fatal`, `gather_facts`, `tags`, `environment`, `pre_tasks`, `roles`, `tasks`, `post_tasks`, `handlers`, `strategy`"
        );
        assert_eq!(
            err("- hosts: all\n  tasks: [\n"),
            "site.yaml:3:1: did not find expected node content, while parsing a flow node"
        );
        assert_eq!(
            err("- hosts: all\n  tasks:\n    - {name: x, command: 'true', notify: nope}\n"),
            "site.yaml: task \"x\" notifies \"nope\", but play \"all\" has no handler of that name"
        );
    }

    #[test]
    fn with_dict_key_value_args_and_diff_keyword() {
        let pb = parse(
            "- hosts: all\n  tasks:\n    - copy: content=x dest=/etc/{{ item.key }} mode=0600\n      with_dict: {a: 1}\n      diff: no\n    - command: echo hi\n      args: {chdir: /tmp}\n      with_dict: '{{ m }}'\n",
            Path::new("site.yaml"),
        )
        .unwrap();
        let t = &pb.plays[0].tasks;
        assert_eq!(
            t[0].loop_,
            Some(serde_yaml::from_str("[{key: a, value: 1}]").unwrap())
        );
        assert_eq!(t[0].diff, Some(false));
        assert_eq!(t[1].loop_, Some("{{ (m) | dict2items }}".into()));
        assert_eq!(
            err("- hosts: all\n  tasks:\n    - copy: {dest: /x}\n      args: {content: y}\n"),
            "site.yaml:3:7: [0].tasks[0]: `copy` has its arguments both as a mapping and in `args`: give them in one place"
        );
    }

    #[test]
    fn an_integer_mode_is_warned_about_with_its_position() {
        let w = integer_mode_warnings(
            Path::new("site.yaml"),
            "- file: {path: /x, mode: 644}\n- copy:\n    mode: 0644\n    dest: /y\n- file:\n    mode: 755\n- file: mode=644\n",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0], "site.yaml:1:26: mode: 644 is a YAML integer: Ansible applies it as decimal 644 (mode 1204); bootstrapctl reads it as octal 0644. Quote it (mode: \"0644\") to mean the same under both");
        assert!(w[1].starts_with("site.yaml:6:11: mode: 755"), "{}", w[1]);
    }

    #[test]
    fn yaml_1_1_and_quoted_booleans_are_read_as_ansible_reads_them() {
        let pb = parse(
            "- hosts: all\n  become: yes\n  gather_facts: no\n  any_errors_fatal: 'True'\n  tasks:\n    - systemd: {name: k, enabled: yes, daemon_reload: on}\n      ignore_errors: yes\n      no_log: 'off'\n      run_once: 1\n      become: No\n      check_mode: n\n",
            Path::new("site.yaml"),
        )
        .unwrap();
        let play = &pb.plays[0];
        assert_eq!(
            (
                play.become_,
                play.gather_facts,
                play.any_errors_fatal.clone()
            ),
            (Some(true), false, BoolKw::Lit(true))
        );
        let t = &play.tasks[0];
        assert_eq!(
            (
                t.ignore_errors.clone(),
                t.no_log,
                t.run_once,
                t.become_,
                t.check_mode
            ),
            (BoolKw::Lit(true), false, true, Some(false), Some(false))
        );
        let Some(crate::modules::ModuleArgs::Systemd(a)) = t.module() else {
            panic!("systemd args");
        };
        assert_eq!(a.enabled, Some(crate::template::Tpl::Literal(true)));
        assert_eq!(a.daemon_reload, Some(crate::template::Tpl::Literal(true)));
        // Anything else is still a load-time error at the value.
        assert_eq!(
            err("- hosts: all\n  become: maybe\n  tasks: []\n"),
            "site.yaml:2:11: [0].become: \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0)"
        );
        assert_eq!(
            err("- hosts: all\n  tasks:\n    - command: 'true'\n      ignore_errors: 2\n"),
            "site.yaml:4:22: [0].tasks[0].ignore_errors: 2 is not a boolean (true/false, yes/no, on/off, 1/0)"
        );
    }
}

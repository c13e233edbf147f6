//! What Ansible does when it loads a play: static imports (`import_tasks`, `import_role`,
//! `include_role`) and `roles:` replaced by their tasks, blocks' keywords handed down to
//! their tasks, role handlers, defaults and vars collected, `vars_files` read, and the
//! sections (pre_tasks, roles, tasks, post_tasks) joined with the handler flushes between
//! them. Only dynamic `include_tasks` remain for the engine, which loads them with
//! [`tasks_file`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::loader::{yaml_error, PlaybookError};
use super::model::Play;
use super::roles::{find_role, role_file, RoleEntry};
use super::task::{Block, Body, Meta, Reference, RoleCx, Task};

/// What the expansion of one play collects besides its tasks.
pub struct PlayLoad<'a> {
    pub playbook_dir: PathBuf,
    pub roles_path: &'a [PathBuf],
    handlers: Vec<Task>,
    role_defaults: serde_yaml::Mapping,
    role_vars: serde_yaml::Mapping,
    /// Roles of `roles:` already in the play, with their parameters (each runs once).
    seen: BTreeSet<String>,
    depth: usize,
}

fn invalid(path: &Path, message: String) -> PlaybookError {
    PlaybookError::Invalid {
        path: path.to_path_buf(),
        message,
    }
}

fn read(path: &Path) -> Result<String, PlaybookError> {
    std::fs::read_to_string(path).map_err(|source| PlaybookError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A YAML file of variables (vars_files, role defaults and vars, include_vars).
pub fn vars_file(path: &Path) -> Result<serde_yaml::Mapping, PlaybookError> {
    let text = read(path)?;
    let v: Option<serde_yaml::Mapping> =
        serde_yaml::from_str(&text).map_err(|e| yaml_error(path, &text, &e))?;
    Ok(v.unwrap_or_default())
}

/// A file of tasks, its static imports expanded (for `include_tasks`, when it runs).
/// `dirs`: where relative imports inside it are looked up after its own directory.
pub fn tasks_file(
    path: &Path,
    dirs: &[PathBuf],
    role: Option<Arc<RoleCx>>,
) -> Result<Vec<Task>, PlaybookError> {
    let mut cx = PlayLoad::new(
        dirs.last().cloned().unwrap_or_else(|| PathBuf::from(".")),
        &[],
    );
    cx.depth = 1;
    let tasks = cx.file(path, dirs, role)?;
    if !cx.handlers.is_empty() {
        return Err(invalid(
            path,
            "a role imported by a file that include_tasks loads cannot add handlers; import it in the play".into(),
        ));
    }
    Ok(tasks)
}

impl<'a> PlayLoad<'a> {
    pub fn new(playbook_dir: PathBuf, roles_path: &'a [PathBuf]) -> Self {
        PlayLoad {
            playbook_dir,
            roles_path,
            handlers: Vec::new(),
            role_defaults: serde_yaml::Mapping::new(),
            role_vars: serde_yaml::Mapping::new(),
            seen: BTreeSet::new(),
            depth: 0,
        }
    }

    /// Expand a play in place.
    pub fn play(mut self, play: &mut Play) -> Result<(), PlaybookError> {
        let source = play.source.clone();
        let dirs = vec![self.playbook_dir.clone()];
        for f in &play.vars_files {
            if crate::template::is_template(f) {
                return Err(invalid(
                    &source,
                    format!("vars_files: {f:?} is a template; bootstrapctl reads vars_files when the playbook loads, so name the file"),
                ));
            }
            let p = self.playbook_dir.join(f);
            play.file_vars.extend(vars_file(&p)?);
        }
        let pre = self.list(std::mem::take(&mut play.pre_tasks), &dirs)?;
        let mut roles = Vec::new();
        for entry in std::mem::take(&mut play.roles) {
            if let Some(t) = self.role_entry(&entry, &source, true)? {
                roles.push(t);
            }
        }
        let tasks = self.list(std::mem::take(&mut play.tasks), &dirs)?;
        let post = self.list(std::mem::take(&mut play.post_tasks), &dirs)?;
        let mut handlers = self.list(std::mem::take(&mut play.handlers), &dirs)?;
        handlers.append(&mut self.handlers);
        let flush = || {
            let mut t = Task::bare(Body::Meta(Meta::FlushHandlers));
            t.implicit = true;
            t
        };
        let mut all = Vec::new();
        let sections = !pre.is_empty() || !post.is_empty();
        all.extend(pre);
        if sections {
            all.push(flush());
        }
        all.extend(roles);
        all.extend(tasks);
        if sections {
            all.push(flush());
        }
        all.extend(post);
        play.tasks = all;
        play.handlers = handlers;
        play.role_defaults = self.role_defaults;
        play.role_vars = self.role_vars;
        Ok(())
    }

    /// A list of tasks with its imports expanded and its blocks' keywords handed down.
    fn list(&mut self, tasks: Vec<Task>, dirs: &[PathBuf]) -> Result<Vec<Task>, PlaybookError> {
        let mut out = Vec::new();
        for t in tasks {
            out.push(self.task(t, dirs)?);
        }
        Ok(out)
    }

    fn task(&mut self, mut t: Task, dirs: &[PathBuf]) -> Result<Task, PlaybookError> {
        let body = std::mem::replace(&mut t.body, Body::Meta(Meta::Noop));
        t.body = match body {
            Body::Block(mut b) => {
                b.block = self.list(std::mem::take(&mut b.block), dirs)?;
                b.rescue = self.list(std::mem::take(&mut b.rescue), dirs)?;
                b.always = self.list(std::mem::take(&mut b.always), dirs)?;
                Body::Block(b)
            }
            Body::Ref(r, _) => match *r {
                Reference::Tasks {
                    file,
                    dynamic: true,
                } => Body::Ref(
                    Box::new(Reference::Tasks {
                        file,
                        dynamic: true,
                    }),
                    Arc::new(dirs.to_vec()),
                ),
                Reference::Tasks {
                    file,
                    dynamic: false,
                } => {
                    let path = locate(&file, dirs).ok_or_else(|| {
                        invalid(
                            Path::new(&file),
                            format!("import_tasks: file not found in {}", show_dirs(dirs)),
                        )
                    })?;
                    let block = self.file(&path, dirs, t.role.clone())?;
                    Body::Block(Box::new(Block {
                        block,
                        rescue: Vec::new(),
                        always: Vec::new(),
                    }))
                }
                Reference::Role { name, tasks_from } => {
                    if t.loop_.is_some() {
                        return Err(invalid(
                            Path::new(&t.origin),
                            format!("include_role {name} with a loop: bootstrapctl loads roles when the playbook loads; loop inside the role instead"),
                        ));
                    }
                    let mut params = std::mem::take(&mut t.vars);
                    params.extend(std::mem::take(&mut t.params));
                    t.params = params;
                    let block =
                        self.role(&name, tasks_from.as_deref(), &self.playbook_dir.clone())?;
                    Body::Block(Box::new(Block {
                        block,
                        rescue: Vec::new(),
                        always: Vec::new(),
                    }))
                }
            },
            other => other,
        };
        t.push_down();
        Ok(t)
    }

    /// The tasks of a file, each given `role`, expanded; imports inside it are looked up in
    /// its own directory first.
    fn file(
        &mut self,
        path: &Path,
        dirs: &[PathBuf],
        role: Option<Arc<RoleCx>>,
    ) -> Result<Vec<Task>, PlaybookError> {
        self.depth += 1;
        if self.depth > 16 {
            return Err(invalid(
                path,
                "imports nested more than 16 deep (an import cycle?)".into(),
            ));
        }
        let text = read(path)?;
        let tasks: Option<Vec<Task>> =
            serde_yaml::from_str(&text).map_err(|e| yaml_error(path, &text, &e))?;
        super::loader::warn_integer_modes(path, &text);
        let mut here = vec![path.parent().unwrap_or(Path::new(".")).to_path_buf()];
        for d in dirs {
            if !here.contains(d) {
                here.push(d.clone());
            }
        }
        let mut out = Vec::new();
        for mut t in tasks.unwrap_or_default() {
            if t.role.is_none() {
                t.role = role.clone();
            }
            t.origin = path.display().to_string();
            out.push(self.task(t, &here)?);
        }
        self.depth -= 1;
        Ok(out)
    }

    /// One entry of `roles:` (or a dependency): a block of the role's tasks, or nothing when
    /// the role already ran in this play with the same parameters.
    fn role_entry(
        &mut self,
        entry: &RoleEntry,
        source: &Path,
        dedup: bool,
    ) -> Result<Option<Task>, PlaybookError> {
        let key = format!(
            "{}\u{0}{}",
            entry.name,
            serde_yaml::to_string(&entry.params).unwrap_or_default()
        );
        if dedup && !self.seen.insert(key) {
            return Ok(None);
        }
        let _ = source;
        let block = self.role(&entry.name, None, &self.playbook_dir.clone())?;
        let mut t = (*entry.keywords).clone();
        t.params = entry.params.clone();
        t.body = Body::Block(Box::new(Block {
            block,
            rescue: Vec::new(),
            always: Vec::new(),
        }));
        t.push_down();
        Ok(Some(t))
    }

    /// A role's tasks (its dependencies' first), having collected its handlers, defaults
    /// and vars.
    fn role(
        &mut self,
        name: &str,
        tasks_from: Option<&str>,
        base: &Path,
    ) -> Result<Vec<Task>, PlaybookError> {
        self.depth += 1;
        if self.depth > 16 {
            return Err(invalid(
                Path::new(name),
                "role dependencies nested more than 16 deep (a cycle?)".into(),
            ));
        }
        let dir = find_role(name, base, self.roles_path).map_err(|m| invalid(base, m))?;
        let read_vars = |sub: &str| -> Result<serde_yaml::Mapping, PlaybookError> {
            match role_file(&dir, sub, "main") {
                Some(p) => vars_file(&p),
                None => Ok(serde_yaml::Mapping::new()),
            }
        };
        let defaults = read_vars("defaults")?;
        let vars = read_vars("vars")?;
        let mut out = Vec::new();
        if let Some(meta) = role_file(&dir, "meta", "main") {
            let text = read(&meta)?;
            #[derive(serde::Deserialize, Default)]
            struct MetaFile {
                #[serde(default)]
                dependencies: Vec<RoleEntry>,
            }
            let m: Option<MetaFile> =
                serde_yaml::from_str(&text).map_err(|e| yaml_error(&meta, &text, &e))?;
            for dep in m.unwrap_or_default().dependencies {
                if let Some(t) = self.role_entry(&dep, &meta, true)? {
                    out.push(t);
                }
            }
        }
        self.role_defaults.extend(defaults.clone());
        self.role_vars.extend(vars.clone());
        let cx = Arc::new(RoleCx {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.to_string()),
            dir: dir.clone(),
            defaults,
            vars,
        });
        let dirs = vec![dir.join("tasks"), self.playbook_dir.clone()];
        let tasks_name = tasks_from.unwrap_or("main");
        match role_file(&dir, "tasks", tasks_name) {
            Some(p) => out.extend(self.file(&p, &dirs, Some(cx.clone()))?),
            None if tasks_from.is_some() => {
                return Err(invalid(
                    &dir,
                    format!("role {name}: tasks_from: tasks/{tasks_name}.yml not found"),
                ))
            }
            None => {}
        }
        let key = format!("handlers\u{0}{}", dir.display());
        if self.seen.insert(key) {
            if let Some(p) = role_file(&dir, "handlers", "main") {
                let hs = self.file(&p, &dirs, Some(cx.clone()))?;
                self.handlers.extend(hs);
            }
        }
        self.depth -= 1;
        Ok(out)
    }
}

/// A relative file in the first of `dirs` that has it.
pub fn locate(file: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(file);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    dirs.iter().map(|d| d.join(file)).find(|p| p.is_file())
}

pub fn show_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    #[test]
    fn roles_imports_and_sections_expand_as_ansible_loads_them() {
        let root = std::env::temp_dir().join(format!("bsctl-expand-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        write(
            &root,
            &[
                (
                    "site.yaml",
                    "- hosts: all\n  vars_files: [v.yml]\n  pre_tasks: [{name: pre, debug: {msg: a}}]\n  roles:\n    - {role: web, when: on_web, port: 81}\n    - web\n  tasks:\n    - import_tasks: t.yml\n      tags: [imp]\n  post_tasks: [{name: post, debug: {msg: b}}]\n",
                ),
                ("v.yml", "from_file: 1\n"),
                ("t.yml", "- {name: imported, debug: {msg: c}}\n"),
                ("roles/web/defaults/main.yml", "port: 80\n"),
                ("roles/web/vars/main.yml", "role_var: 1\n"),
                ("roles/web/meta/main.yml", "dependencies: [base]\n"),
                ("roles/web/tasks/main.yml", "- {name: config, debug: {msg: d}}\n"),
                ("roles/web/handlers/main.yml", "- {name: restart, debug: {msg: e}}\n"),
                ("roles/base/tasks/main.yml", "- {name: base, debug: {msg: f}}\n"),
            ],
        );
        let pb = super::super::load_with(&root.join("site.yaml"), &[]).unwrap();
        let play = &pb.plays[0];
        let mut names = Vec::new();
        for t in play.all_tasks() {
            if matches!(t.body, Body::Module(_)) {
                names.push((
                    t.display_name(),
                    t.when.clone().map(|c| c.0),
                    t.tags.clone(),
                ));
            }
        }
        let no: Vec<String> = Vec::new();
        assert_eq!(
            names,
            vec![
                ("pre".to_string(), None, no.clone()),
                (
                    "base : base".to_string(),
                    Some(vec!["on_web".to_string()]),
                    no.clone()
                ),
                (
                    "web : config".to_string(),
                    Some(vec!["on_web".to_string()]),
                    no.clone()
                ),
                // `- web` without parameters is another entry: it runs again.
                ("web : config".to_string(), None, no.clone()),
                ("imported".to_string(), None, vec!["imp".to_string()]),
                ("post".to_string(), None, no.clone()),
                ("web : restart".to_string(), None, no.clone()),
            ]
        );
        // The sections are joined with handler flushes.
        let flushes = play
            .tasks
            .iter()
            .filter(|t| matches!(t.body, Body::Meta(Meta::FlushHandlers)))
            .count();
        assert_eq!(flushes, 2);
        assert_eq!(play.file_vars.get("from_file"), Some(&1.into()));
        assert_eq!(play.role_defaults.get("port"), Some(&80.into()));
        assert_eq!(play.role_vars.get("role_var"), Some(&1.into()));
        let err = super::super::parse("- hosts: all\n  roles: [wbe]\n", &root.join("site.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("role `wbe` not found"), "{err}");
        assert!(err.contains("did you mean `web`?"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}

//! `--list-tasks` and `--list-hosts`: a loaded playbook's plays, tasks and hosts, laid out
//! as ansible-playbook prints them.

use super::model::Playbook;
use super::task::{Body, Task};

fn tags(t: &[String]) -> String {
    format!(
        "[{}]",
        t.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn tasks(list: &[Task], play_tags: &[String], out: &mut String) {
    for t in list {
        match &t.body {
            // As Ansible lists them: a block's own tasks, not its rescue or always.
            Body::Block(b) => tasks(&b.block, play_tags, out),
            Body::Meta(_) if t.implicit => {}
            Body::Meta(_) if t.name.is_none() => {}
            _ => {
                let mut all: Vec<String> = play_tags.to_vec();
                all.extend(t.tags.iter().cloned());
                out.push_str(&format!(
                    "      {}\tTAGS: {}\n",
                    t.display_name(),
                    tags(&all)
                ));
            }
        }
    }
}

/// The plays with their hosts (`hosts[i]` for play i) and/or tasks.
pub fn render(
    pb: &Playbook,
    path: &str,
    hosts: Option<&[Vec<String>]>,
    with_tasks: bool,
) -> String {
    let mut out = format!("\nplaybook: {path}\n");
    for (i, play) in pb.plays.iter().enumerate() {
        out.push_str(&format!(
            "\n  play #{} ({}): {}\tTAGS: {}\n",
            i + 1,
            play.hosts,
            play.display_name(),
            tags(&play.tags)
        ));
        if let Some(hosts) = hosts {
            let h = &hosts[i];
            out.push_str(&format!(
                "    pattern: ['{}']\n    hosts ({}):\n",
                play.hosts,
                h.len()
            ));
            for name in h {
                out.push_str(&format!("      {name}\n"));
            }
        }
        if with_tasks {
            out.push_str("    tasks:\n");
            tasks(&play.tasks, &play.tags, &mut out);
        }
    }
    out
}

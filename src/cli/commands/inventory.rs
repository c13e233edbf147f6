//! `inventory list | graph | host`: the inventory as bootstrapctl reads it, in the table of
//! matched hosts or in the shapes `ansible-inventory --list/--graph/--host` print, with every
//! decrypted vault value redacted.

use crate::cli::args::{InventoryCommand, InventorySource};
use crate::error::{CommandError, Error};
use crate::inventory::{self, Inventory, LoadOptions};
use crate::secret::Redactor;
use crate::vault::Vault;

pub fn run(command: InventoryCommand) -> Result<i32, Error> {
    match command {
        InventoryCommand::List {
            source,
            limit,
            output,
        } => {
            let (inv, redactor) = load(&source)?;
            let hosts = match limit.as_deref() {
                Some(l) => inv.select(l).map_err(CommandError::Limit)?,
                None => inv.select("all")?,
            };
            match output.as_deref() {
                Some("json") => {
                    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
                    print_json(&inventory::list_json(&inv, &names), &redactor);
                    Ok(0)
                }
                Some(other) => Err(Error::Usage(format!(
                    "--output: unknown format {other:?} (supported: json)"
                ))),
                None => table(&hosts, &redactor),
            }
        }
        InventoryCommand::Graph { source, group } => {
            let (inv, redactor) = load(&source)?;
            let text = inventory::graph(&inv, &group).ok_or(CommandError::NoGroup(group))?;
            print!("{}", redactor.redact(&text));
            Ok(0)
        }
        InventoryCommand::Host { source, name } => {
            let (inv, redactor) = load(&source)?;
            if inv.host(&name).is_none() {
                return Err(CommandError::NoHost(name).into());
            }
            print_json(&inventory::host_json(&inv, &name), &redactor);
            Ok(0)
        }
    }
}

fn load(source: &InventorySource) -> Result<(Inventory, Redactor), Error> {
    let vault = Vault::from_sources(&source.vault_password_file, source.ask_vault_pass)?;
    let inv = Inventory::load_with(&LoadOptions {
        sources: source.inventory.clone(),
        playbook_dir: source.playbook_dir.clone(),
        vault,
    })?;
    let redactor = Redactor::new();
    for secret in inv.secrets() {
        redactor.register(secret);
    }
    Ok((inv, redactor))
}

fn print_json(value: &serde_json::Value, redactor: &Redactor) {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    println!("{}", redactor.redact(&text));
}

fn table(hosts: &[&inventory::Host], redactor: &Redactor) -> Result<i32, Error> {
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<width$}  {:<22}  GROUPS\n", "HOST", "ADDRESS");
    for h in hosts {
        let addr = h.address()?;
        let port = h.port()?;
        let addr = match port {
            Some(p) => format!("{addr}:{p}"),
            None => addr,
        };
        let groups: Vec<&str> = h
            .groups
            .iter()
            .map(String::as_str)
            .filter(|g| *g != "all")
            .collect();
        out.push_str(&format!(
            "{:<width$}  {:<22}  {}\n",
            h.name,
            addr,
            groups.join(",")
        ));
    }
    print!("{}", redactor.redact(&out));
    Ok(0)
}

//! `inventory list`: the matched hosts with their groups and address.

use std::path::Path;

use crate::error::{CommandError, Error};
use crate::inventory::Inventory;

pub fn list(path: &Path, limit: Option<&str>) -> Result<i32, Error> {
    let inv = Inventory::load(path)?;
    let hosts = match limit {
        Some(l) => inv.select(l).map_err(CommandError::Limit)?,
        None => inv.select("all")?,
    };
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<22}  GROUPS", "HOST", "ADDRESS");
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
        println!("{:<width$}  {:<22}  {}", h.name, addr, groups.join(","));
    }
    Ok(0)
}

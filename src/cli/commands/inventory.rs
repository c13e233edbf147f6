//! `inventory list`: the matched hosts with their groups and address.

use std::path::Path;

use crate::error::Error;
use crate::inventory::Inventory;

pub fn list(path: &Path, limit: Option<&str>) -> Result<i32, Error> {
    let inv = Inventory::load(path).map_err(|e| Error::Config(e.to_string()))?;
    let hosts = inv
        .select(limit.unwrap_or("all"))
        .map_err(|e| Error::Config(e.to_string()))?;
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<22}  GROUPS", "HOST", "ADDRESS");
    for h in hosts {
        let addr = h.address().map_err(|e| Error::Config(e.to_string()))?;
        let port = h.port().map_err(|e| Error::Config(e.to_string()))?;
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

//! `lab up|down|status|reboot`: the local fleet, through the bootstrapctl-lab crate's API.
#![cfg(feature = "lab")]

use std::path::Path;

use bootstrapctl_lab::{self as lab, LabSpec};

use crate::cli::args::LabCommand;
use crate::error::Error;

/// Runs one `lab` subcommand.
pub fn run(cmd: LabCommand) -> Result<i32, Error> {
    match cmd {
        LabCommand::Up {
            workers,
            control_planes,
            dir,
            port,
            subnet,
            bare,
            same_product_uuid,
            real_components,
        } => {
            let self_exe =
                std::env::current_exe().map_err(crate::error::CommandError::OwnBinary)?;
            up(&LabSpec {
                dir,
                workers,
                control_planes,
                standin_exe: lab::standin_binary(&self_exe),
                port,
                subnet,
                bare,
                shared_product_uuid: same_product_uuid,
                real_components,
            })
        }
        LabCommand::Down { dir } => down(&dir),
        LabCommand::Status { dir } => status(&dir),
        LabCommand::Reboot { host, dir } => reboot(&dir, &host),
    }
}

pub fn up(spec: &LabSpec) -> Result<i32, Error> {
    let dir = spec.dir.as_path();
    let started = std::time::Instant::now();
    let info = match lab::up(spec) {
        Ok(info) => info,
        // Running the quick start twice is fine: the lab that is up stays as it is.
        Err(lab::LabError::AlreadyUp(d)) => {
            println!(
                "lab already up in {} (`bootstrapctl lab down --dir {}` stops it)",
                d.display(),
                dir.display()
            );
            println!(
                "next: bootstrapctl apply -i {}",
                d.join("inventory.yaml").display()
            );
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "lab up: {} hosts in {:.1}s\n  inventory:   {}\n  known_hosts: {}\n  key:         {}",
        info.hosts.len(),
        started.elapsed().as_secs_f64(),
        info.inventory.display(),
        info.known_hosts.display(),
        info.key.display()
    );
    if spec.control_planes > 0 {
        let d = info.inventory.parent().unwrap_or(dir);
        let what = if spec.real_components.is_some() {
            "real etcd, kube-apiserver, kube-controller-manager v1.20.2; worker-01: real containerd and kubelet"
        } else {
            "kube-apiserver, kube-controller-manager stand-ins"
        };
        println!(
            "  control plane: cp-1 seeded ({what})\n  admin:       {}\n  CA:          {}",
            d.join("admin.kubeconfig").display(),
            d.join("ca.crt").display()
        );
    }
    println!("next: bootstrapctl apply -i {}", info.inventory.display());
    Ok(0)
}

pub fn down(dir: &Path) -> Result<i32, Error> {
    let n = lab::down(dir)?;
    println!("lab down: stopped {n} processes");
    Ok(0)
}

pub fn status(dir: &Path) -> Result<i32, Error> {
    let hosts = lab::status(dir)?;
    let mut all_up = true;
    println!("{:<12} {:<20} {:>8}  STATE", "HOST", "ADDRESS", "PID");
    for h in &hosts {
        all_up &= h.alive;
        println!(
            "{:<12} {:<20} {:>8}  {}",
            h.name,
            format!("{}:{}", h.address, h.port),
            h.pid,
            if h.alive { "up" } else { "DOWN" }
        );
    }
    Ok(if all_up { 0 } else { 1 })
}

pub fn reboot(dir: &Path, host: &str) -> Result<i32, Error> {
    lab::reboot(dir, host)?;
    println!("lab reboot: {host} stopped its units and started the enabled ones");
    Ok(0)
}

//! Which hosts a lab has: names, groups and their unique 127.S.x.y addresses (S: the subnet).

use std::net::Ipv4Addr;

/// Hosts per third octet: addresses run 127.S.N.1 ..= 127.S.N.250, then the next N.
const PER_OCTET: usize = 250;
/// Upper bound on the fleet: 256 third octets of 250 hosts.
pub(crate) const MAX_HOSTS: usize = PER_OCTET * 256;

pub(crate) const GROUP_CONTROL_PLANE: &str = "control_plane";
pub(crate) const GROUP_WORKERS: &str = "workers";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedHost {
    pub(crate) name: String,
    pub(crate) group: &'static str,
    pub(crate) address: Ipv4Addr,
}

/// Address of the i-th host (0-based, control planes first). Always inside 127.0.0.0/8, so a
/// lab never listens on a routable address; `subnet` (the second octet) keeps labs apart.
pub(crate) fn address(subnet: u8, index: usize) -> Ipv4Addr {
    assert!(index < MAX_HOSTS, "lab host index {index} out of range");
    Ipv4Addr::new(
        127,
        subnet,
        (index / PER_OCTET) as u8,
        (index % PER_OCTET + 1) as u8,
    )
}

/// `cp-1..cp-M` then `worker-01..worker-NN` (two digits, three from 100 workers on, and so on).
pub(crate) fn plan(subnet: u8, control_planes: usize, workers: usize) -> Vec<PlannedHost> {
    let width = workers.to_string().len().max(2);
    let cps = (1..=control_planes).map(|i| (format!("cp-{i}"), GROUP_CONTROL_PLANE));
    let ws = (1..=workers).map(|i| (format!("worker-{i:0width$}"), GROUP_WORKERS));
    cps.chain(ws)
        .enumerate()
        .map(|(i, (name, group))| PlannedHost {
            name,
            group,
            address: address(subnet, i),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_groups_and_addresses() {
        let hosts = plan(10, 2, 3);
        let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["cp-1", "cp-2", "worker-01", "worker-02", "worker-03"]
        );
        assert_eq!(hosts[0].group, GROUP_CONTROL_PLANE);
        assert_eq!(hosts[2].group, GROUP_WORKERS);
        assert_eq!(hosts[0].address, Ipv4Addr::new(127, 10, 0, 1));
        assert_eq!(hosts[4].address, Ipv4Addr::new(127, 10, 0, 5));
    }

    #[test]
    fn padding_grows_with_the_fleet() {
        let hosts = plan(10, 0, 100);
        assert_eq!(hosts[0].name, "worker-001");
        assert_eq!(hosts[99].name, "worker-100");
        assert_eq!(plan(10, 0, 99)[98].name, "worker-99");
    }

    #[test]
    fn addresses_are_unique_and_loopback() {
        let hosts = plan(10, 3, 600);
        let mut seen = std::collections::HashSet::new();
        for h in &hosts {
            assert!(h.address.is_loopback());
            assert_ne!(h.address.octets()[3], 0);
            assert!(seen.insert(h.address), "duplicate {}", h.address);
        }
        assert_eq!(address(10, 250), Ipv4Addr::new(127, 10, 1, 1));
    }
}

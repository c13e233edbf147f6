//! Turning swap off for good: commenting out swap entries in /etc/fstab and reading /proc/swaps.
//!
//! The kubelet refuses to start with swap on (unless configured otherwise), and `swapoff -a` does
//! not survive a reboot; the fstab entries must go too. Fields are returned as written (fstab and
//! /proc/swaps both escape a space as `\040`), since they are only compared and shown.

/// Every active line whose third field (the type) is `swap` becomes `# ` + line; idempotent.
pub fn comment_out_swap(fstab_text: &str) -> String {
    fstab_text
        .split_inclusive('\n')
        .map(|line| {
            if is_active_swap(line) {
                format!("# {line}")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// The first fields (device, UUID=…, or file) of the active swap lines.
pub fn active_swap_entries(fstab_text: &str) -> Vec<String> {
    fstab_text
        .lines()
        .filter(|l| is_active_swap(l))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Device or file names from /proc/swaps, without its `Filename Type ...` header.
#[cfg(test)]
pub fn parse_proc_swaps(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(i, l)| !(*i == 0 && l.trim_start().starts_with("Filename")))
        .filter_map(|(_, l)| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn is_active_swap(line: &str) -> bool {
    let t = line.trim_start();
    !t.starts_with('#') && t.split_whitespace().nth(2) == Some("swap")
}

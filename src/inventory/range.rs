//! Host name ranges: expands `worker-[01:50]`, `node-[a:f]` and `web[1:10:2]` into host names.

/// Most host names one inventory entry may expand to; guards against `[1:999999999]` typos.
const MAX_EXPANSION: usize = 100_000;

/// Expands every `[start:end]` / `[start:end:stride]` range in `name`, first range outermost,
/// as Ansible does. A name without `[` is returned as it is.
///
/// Numbers keep zero padding when the start has a leading zero (`[01:10]` gives `01`…`10`);
/// letters are single ASCII letters (`[a:f]`). The error is a message without the host name.
pub(crate) fn expand(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let close = match name[open..].find(']') {
        Some(offset) => open + offset,
        None => return Err("unclosed \"[\" (ranges are written [start:end])".to_string()),
    };
    let (head, spec, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let items = range_items(spec).map_err(|message| format!("bad range [{spec}]: {message}"))?;
    let tails = expand(tail)?;
    if items.len().saturating_mul(tails.len()) > MAX_EXPANSION {
        return Err(format!("expands to more than {MAX_EXPANSION} hosts"));
    }
    let mut names = Vec::with_capacity(items.len() * tails.len());
    for item in &items {
        for rest in &tails {
            names.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(names)
}

/// The items of one range, from what is between the brackets.
fn range_items(spec: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
    let (start, end, stride) = match parts[..] {
        [start, end] => (start, end, None),
        [start, end, stride] => (start, end, Some(stride)),
        _ => return Err("expected [start:end] or [start:end:stride]".to_string()),
    };
    let stride = match stride {
        None => 1,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("stride {text:?} is not a positive number")),
        },
    };
    if end.is_empty() {
        return Err("the end is missing".to_string());
    }
    // Ansible treats an empty start as 0.
    let start = if start.is_empty() { "0" } else { start };
    if is_number(start) && is_number(end) {
        numbers(start, end, stride)
    } else if is_letter(start) && is_letter(end) {
        letters(start, end, stride)
    } else {
        Err(format!(
            "start {start:?} and end {end:?} must both be numbers or both be single letters"
        ))
    }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_letter(text: &str) -> bool {
    text.len() == 1 && text.bytes().all(|b| b.is_ascii_alphabetic())
}

fn numbers(start: &str, end: &str, stride: usize) -> Result<Vec<String>, String> {
    let too_big = |text: &str| format!("{text} is too large");
    let first: u64 = start.parse().map_err(|_| too_big(start))?;
    let last: u64 = end.parse().map_err(|_| too_big(end))?;
    if first > last {
        return Err(format!("start {start} is greater than end {end}"));
    }
    let width = if start.len() > 1 && start.starts_with('0') {
        if start.len() != end.len() {
            return Err(format!(
                "zero-padded start {start} and end {end} must have the same width"
            ));
        }
        start.len()
    } else {
        0
    };
    let count = (last - first) / stride as u64 + 1;
    if count > MAX_EXPANSION as u64 {
        return Err(format!("expands to more than {MAX_EXPANSION} hosts"));
    }
    Ok((first..=last)
        .step_by(stride)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

fn letters(start: &str, end: &str, stride: usize) -> Result<Vec<String>, String> {
    // Ansible indexes string.ascii_letters: a-z then A-Z.
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let first = LETTERS.find(start).unwrap_or(0);
    let last = LETTERS.find(end).unwrap_or(0);
    if first > last {
        return Err(format!("start {start} is after end {end}"));
    }
    Ok(LETTERS[first..=last]
        .chars()
        .step_by(stride)
        .map(String::from)
        .collect())
}

/// A host entry as Ansible's inventory plugins read it: an optional `:port` (`host:2222`,
/// `[::1]:2222`), then ranges expanded. An entry Ansible's address parser does not accept is
/// taken whole as one name, without a port, as Ansible does.
pub(crate) fn expand_hostpattern(entry: &str) -> Result<(Vec<String>, Option<i64>), String> {
    let (name, port) = parse_address(entry).unwrap_or_else(|| (entry.to_string(), None));
    let names = if name.contains('[') {
        expand(&name)?
    } else {
        vec![name]
    };
    Ok((names, port))
}

/// Ansible's `parse_address` (with ranges allowed): `[host]:port`, `host:port`, then the host
/// must look like an IPv4/IPv6 address or a host name (labels of word characters and `-`, not
/// ending with `-` or `_`, ranges allowed).
fn parse_address(entry: &str) -> Option<(String, Option<i64>)> {
    let mut address = entry.to_string();
    let mut port = None;
    if let Some(rest) = address.strip_prefix('[') {
        if let Some((inner, p)) = rest.rsplit_once("]:") {
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                port = p.parse().ok();
                address = inner.to_string();
            }
        }
    }
    if let Some((head, p)) = address.rsplit_once(':') {
        let mut depth = 0i32;
        let colon_outside = head.chars().any(|c| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ':' if depth == 0 => return true,
                _ => {}
            }
            false
        });
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !colon_outside {
            port = p.parse().ok();
            address = head.to_string();
        }
    }
    let ipv6 = address.contains(':')
        && address
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '[' | ']'));
    let label_ok = |label: &str| {
        let first = label.chars().next();
        let last = label.chars().last();
        let inside_ok = {
            let mut depth = 0i32;
            label.chars().all(|c| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                depth > 0 || c == ']' || c.is_alphanumeric() || c == '_' || c == '-'
            })
        };
        matches!(first, Some(c) if c.is_alphanumeric() || c == '_' || c == '[')
            && !matches!(last, Some('-' | '_'))
            && inside_ok
    };
    let hostname = !address.is_empty() && split_labels(&address).iter().all(|l| label_ok(l));
    (ipv6 || hostname).then_some((address, port))
}

/// Splits on `.` outside brackets.
fn split_labels(name: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in name.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&name[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&name[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expands_ranges() {
        let cases: &[(&str, &[&str])] = &[
            ("plain", &["plain"]),
            ("web[1:3]", &["web1", "web2", "web3"]),
            ("w-[08:11]", &["w-08", "w-09", "w-10", "w-11"]),
            ("w[8:11]", &["w8", "w9", "w10", "w11"]),
            ("w[001:003].x", &["w001.x", "w002.x", "w003.x"]),
            ("n[1:10:4]", &["n1", "n5", "n9"]),
            ("n[:2]", &["n0", "n1", "n2"]),
            ("node-[a:c].ex", &["node-a.ex", "node-b.ex", "node-c.ex"]),
            ("x[y:B]", &["xy", "xz", "xA", "xB"]),
            ("x[a:e:2]", &["xa", "xc", "xe"]),
            ("r[1:2]-[a:b]", &["r1-a", "r1-b", "r2-a", "r2-b"]),
            ("[1:2]", &["1", "2"]),
            ("s[3:3]", &["s3"]),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input).unwrap(), *want, "expanding {input}");
        }
    }

    #[test]
    fn worker_range_has_fifty_padded_names() {
        let names = expand("worker-[01:50]").unwrap();
        assert_eq!(names.len(), 50);
        assert_eq!(names[0], "worker-01");
        assert_eq!(names[49], "worker-50");
    }

    #[test]
    fn rejects_bad_ranges() {
        let cases = [
            ("w[5:1]", "bad range [5:1]: start 5 is greater than end 1"),
            ("w[f:a]", "bad range [f:a]: start f is after end a"),
            ("w[1:5", "unclosed \"[\" (ranges are written [start:end])"),
            ("w[1]", "bad range [1]: expected [start:end] or [start:end:stride]"),
            ("w[1:2:3:4]", "bad range [1:2:3:4]: expected [start:end] or [start:end:stride]"),
            ("w[1:5:0]", "bad range [1:5:0]: stride \"0\" is not a positive number"),
            ("w[1:]", "bad range [1:]: the end is missing"),
            (
                "w[1:f]",
                "bad range [1:f]: start \"1\" and end \"f\" must both be numbers or both be single letters",
            ),
            (
                "w[aa:bb]",
                "bad range [aa:bb]: start \"aa\" and end \"bb\" must both be numbers or both be single letters",
            ),
            (
                "w[01:100]",
                "bad range [01:100]: zero-padded start 01 and end 100 must have the same width",
            ),
            ("w[1:1000000]", "bad range [1:1000000]: expands to more than 100000 hosts"),
            ("w[1:1000]-[1:1000]", "expands to more than 100000 hosts"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input).unwrap_err(), want, "expanding {input}");
        }
    }
}

//! Ansible host patterns (`web*,db:&prod:!db-3`, `~web\\d+`, `workers[0:2]`): parsing and
//! selecting hosts as Ansible's inventory manager does. It sees the inventory only through
//! [`Universe`], so it does not depend on the model.

use std::collections::HashSet;

/// What a pattern selects from: host names (index = host id) and groups in creation order,
/// each with its hosts in Ansible's order.
pub(crate) struct Universe<'a> {
    pub(crate) hosts: &'a [&'a str],
    pub(crate) groups: &'a [(&'a str, &'a [usize])],
}

/// A parsed host pattern.
#[derive(Debug)]
pub(crate) struct Pattern {
    terms: Vec<Term>,
}

#[derive(Debug)]
struct Term {
    op: Op,
    /// The term as written without its operator (a host name is looked up as is).
    text: String,
    matcher: Matcher,
    slice: Option<(i64, Option<i64>)>,
}

#[derive(Debug)]
enum Matcher {
    Glob(Glob),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Union,
    Intersect,
    Exclude,
}

impl Pattern {
    /// Parses a pattern as Ansible's `split_host_pattern`: terms separated by `,`, or by `:`
    /// outside `[…]` when there is no `,`; empty terms are dropped.
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        let pieces: Vec<&str> = split(text)
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if pieces.is_empty() {
            return Err("the pattern is empty".to_string());
        }
        let mut terms = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let (op, rest) = match piece.as_bytes()[0] {
                b'!' => (Op::Exclude, &piece[1..]),
                b'&' => (Op::Intersect, &piece[1..]),
                _ => (Op::Union, piece),
            };
            if rest.is_empty() {
                return Err(format!(
                    "{:?} must be followed by a host or group name",
                    &piece[..1]
                ));
            }
            let (expr, slice) = split_subscript(rest);
            let matcher = match expr.strip_prefix('~') {
                Some(re) => Matcher::Regex(
                    regex::Regex::new(&format!("^(?:{re})"))
                        .map_err(|e| format!("invalid regular expression in {piece:?}: {e}"))?,
                ),
                None => Matcher::Glob(Glob::parse(expr).map_err(|m| format!("{m} in {piece:?}"))?),
            };
            terms.push(Term {
                op,
                text: rest.to_string(),
                matcher,
                slice,
            });
        }
        Ok(Pattern { terms })
    }

    /// Ids of the selected hosts in Ansible's order: the plain terms in the order written
    /// (each term's hosts in group order, no host twice), then `&` terms keep only hosts they
    /// match, then `!` terms remove theirs. No plain term means `all`.
    pub(crate) fn select(&self, u: &Universe) -> Result<Vec<usize>, String> {
        let mut hosts: Vec<usize> = Vec::new();
        let plain: Vec<&Term> = self.terms.iter().filter(|t| t.op == Op::Union).collect();
        let all_term;
        let plain = if plain.is_empty() {
            all_term = Term {
                op: Op::Union,
                text: "all".into(),
                matcher: Matcher::Glob(Glob::parse("all")?),
                slice: None,
            };
            vec![&all_term]
        } else {
            plain
        };
        let rest = self
            .terms
            .iter()
            .filter(|t| t.op == Op::Intersect)
            .chain(self.terms.iter().filter(|t| t.op == Op::Exclude));
        for term in plain.into_iter().chain(rest) {
            if term.op == Op::Union {
                if let Some(h) = u.hosts.iter().position(|n| *n == term.text) {
                    hosts.push(h);
                    continue;
                }
            }
            let that = term.hosts(u)?;
            match term.op {
                Op::Union => {
                    let existing: HashSet<usize> = hosts.iter().copied().collect();
                    hosts.extend(that.into_iter().filter(|h| !existing.contains(h)));
                }
                Op::Intersect => {
                    let that: HashSet<usize> = that.into_iter().collect();
                    hosts.retain(|h| that.contains(h));
                }
                Op::Exclude => {
                    let that: HashSet<usize> = that.into_iter().collect();
                    hosts.retain(|h| !that.contains(h));
                }
            }
        }
        let mut seen = HashSet::new();
        hosts.retain(|h| seen.insert(*h));
        Ok(hosts)
    }
}

impl Term {
    fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Glob(g) => g.matches(name),
            Matcher::Regex(r) => r.is_match(name),
        }
    }

    /// Ansible's `_enumerate_matches` then `_apply_subscript`: hosts of every matching group
    /// (in group creation order), plus hosts whose name matches when no group does or the
    /// term is a regex or has `.`, `?`, `*` or `[`.
    fn hosts(&self, u: &Universe) -> Result<Vec<usize>, String> {
        let expr = match self.slice {
            Some(_) => self.text[..self.text.rfind('[').unwrap_or(self.text.len())].to_string(),
            None => self.text.clone(),
        };
        let mut results = Vec::new();
        let mut any_group = false;
        for (name, members) in u.groups {
            if self.matches(name) {
                any_group = true;
                results.extend(members.iter().copied());
            }
        }
        if !any_group || expr.starts_with('~') || expr.contains(['.', '?', '*', '[']) {
            for (i, name) in u.hosts.iter().enumerate() {
                if self.matches(name) {
                    results.push(i);
                }
            }
        }
        let Some((start, end)) = self.slice else {
            return Ok(results);
        };
        if results.is_empty() {
            return Ok(results);
        }
        let len = results.len() as i64;
        match end {
            Some(end) if end != 0 => {
                let end = if end == -1 { len - 1 } else { end };
                let (a, b) = (start.clamp(0, len), (end + 1).clamp(0, len));
                Ok(if a < b {
                    results[a as usize..b as usize].to_vec()
                } else {
                    Vec::new()
                })
            }
            _ => {
                let i = if start < 0 { len + start } else { start };
                // Out of range selects nothing (Ansible reports "No hosts matched").
                Ok(if (0..len).contains(&i) {
                    vec![results[i as usize]]
                } else {
                    Vec::new()
                })
            }
        }
    }
}

/// Splits on `,`, or (no `,`) on `:` outside `[…]` unless the whole pattern is one address
/// with a port, as Ansible.
fn split(text: &str) -> Vec<&str> {
    if text.contains(',') {
        return text.split(',').collect();
    }
    let mut pieces = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                pieces.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// Ansible's `PATTERN_WITH_SUBSCRIPT`: `expr[N]`, `expr[-N]`, `expr[N:]`, `expr[N:M]` (or
/// `N-M`) → (expr, (start, end)); end `None` for a single index, `-1` for an open end. A
/// regex (`~…`) never has one.
fn split_subscript(term: &str) -> (&str, Option<(i64, Option<i64>)>) {
    if term.starts_with('~') {
        return (term, None);
    }
    let Some(body) = term.strip_suffix(']') else {
        return (term, None);
    };
    let Some(open) = body.rfind('[') else {
        return (term, None);
    };
    let (name, inside) = (&body[..open], &body[open + 1..]);
    if name.is_empty() {
        return (term, None);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(inside.strip_prefix('-').unwrap_or(inside)) {
        if let Ok(i) = inside.parse() {
            return (name, Some((i, None)));
        }
    }
    if let Some(sep) = inside.find([':', '-']) {
        let (a, b) = (&inside[..sep], &inside[sep + 1..]);
        if digits(a) && (b.is_empty() || digits(b)) {
            let start = a.parse().unwrap_or(0);
            let end = if b.is_empty() {
                -1
            } else {
                b.parse().unwrap_or(-1)
            };
            return (name, Some((start, Some(end))));
        }
    }
    (term, None)
}

/// A shell-style glob as Python's `fnmatch` (which Ansible uses): `*`, `?`, `[abc]`, `[a-z]`,
/// `[!abc]`; case-sensitive.
#[derive(Debug, PartialEq)]
struct Glob {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, PartialEq)]
enum Token {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    fn parse(text: &str) -> Result<Glob, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::Any),
                '[' => {
                    let mut j = i + 1;
                    let negated = chars.get(j) == Some(&'!');
                    if negated {
                        j += 1;
                    }
                    // A `]` right after `[` or `[!` is a member, as in fnmatch.
                    let first = j;
                    while j < chars.len() && (chars[j] != ']' || j == first) {
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err("unclosed \"[\"".to_string());
                    }
                    let members = &chars[first..j];
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < members.len() {
                        if k + 2 < members.len() && members[k + 1] == '-' {
                            ranges.push((members[k], members[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((members[k], members[k]));
                            k += 1;
                        }
                    }
                    tokens.push(Token::Class { negated, ranges });
                    i = j;
                }
                c => tokens.push(Token::Char(c)),
            }
            i += 1;
        }
        Ok(Glob {
            source: text.to_string(),
            tokens,
        })
    }

    fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // Iterative matching with backtracking to the last `*`.
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            let step = match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, n));
                    t += 1;
                    continue;
                }
                Some(Token::Char(c)) => *c == name[n],
                Some(Token::Any) => true,
                Some(Token::Class { negated, ranges }) => {
                    let inside = ranges.iter().any(|(a, b)| (*a..=*b).contains(&name[n]));
                    inside != *negated
                }
                None => false,
            };
            if step {
                t += 1;
                n += 1;
            } else if let Some((st, sn)) = star {
                t = st + 1;
                n = sn + 1;
                star = Some((st, sn + 1));
            } else {
                return false;
            }
        }
        self.tokens[t..].iter().all(|tok| *tok == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_fnmatch() {
        let cases = [
            ("worker-0*", "worker-07", true),
            ("worker-0*", "worker-10", false),
            ("*.example.com", "a.example.com", true),
            ("web?", "web12", false),
            ("web[!12]", "web3", true),
            ("n[a-c]x", "nbx", true),
            ("a*b*c", "aXXbYY", false),
            ("Web", "web", false),
            ("[]]x", "]x", true),
        ];
        for (glob, name, want) in cases {
            assert_eq!(
                Glob::parse(glob).unwrap().matches(name),
                want,
                "{glob} on {name}"
            );
        }
    }

    #[test]
    fn subscripts_as_ansible() {
        assert_eq!(split_subscript("web[0]"), ("web", Some((0, None))));
        assert_eq!(split_subscript("web[-1]"), ("web", Some((-1, None))));
        assert_eq!(split_subscript("web[1:]"), ("web", Some((1, Some(-1)))));
        assert_eq!(split_subscript("web[1-2]"), ("web", Some((1, Some(2)))));
        assert_eq!(split_subscript("web[:2]"), ("web[:2]", None));
        assert_eq!(split_subscript("~web[0]"), ("~web[0]", None));
    }

    #[test]
    fn selection_order_and_errors() {
        let hosts = ["a1", "a2", "b1", "web.x"];
        let groups: Vec<(&str, &[usize])> =
            vec![("all", &[0, 1, 2, 3]), ("a", &[1, 0]), ("b", &[2])];
        let u = Universe {
            hosts: &hosts,
            groups: &groups,
        };
        let sel = |p: &str| Pattern::parse(p).and_then(|p| p.select(&u));
        assert_eq!(sel("b,a").unwrap(), [2, 1, 0]);
        assert_eq!(sel("a[0]").unwrap(), [1]);
        assert_eq!(sel("~a\\d").unwrap(), [0, 1]);
        assert_eq!(sel("~web").unwrap(), [3]);
        assert_eq!(sel("all:!a").unwrap(), [2, 3]);
        assert_eq!(sel("&b").unwrap(), [2]);
        assert_eq!(sel("a[5]").unwrap(), Vec::<usize>::new());
        assert!(Pattern::parse("~(")
            .unwrap_err()
            .starts_with("invalid regular expression"));
        assert_eq!(Pattern::parse(" , ").unwrap_err(), "the pattern is empty");
    }
}

//! Ansible host patterns (`web*,db:&prod:!db-3`, `workers[0:2]`): parsing and selecting hosts.

use super::model::Inventory;

/// A parsed host pattern.
#[derive(Debug, PartialEq)]
pub(crate) struct Pattern {
    terms: Vec<Term>,
}

#[derive(Debug, PartialEq)]
struct Term {
    op: Op,
    glob: Glob,
    slice: Option<Slice>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Union,
    Intersect,
    Exclude,
}

/// Ansible's subscript on a term's hosts: `[i]` (negative counts from the end) or `[i:j]`,
/// both ends inclusive, either one optional.
#[derive(Debug, PartialEq)]
enum Slice {
    Index(i64),
    Range(Option<usize>, Option<usize>),
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong (without repeating the pattern).
    ///
    /// Terms are separated by `,`, or by `:` when the pattern has no `,` (a `:` inside `[…]`
    /// belongs to a slice). Surrounding spaces are ignored.
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        if text.trim().is_empty() {
            return Err("the pattern is empty".to_string());
        }
        let pieces = split(text);
        let mut terms = Vec::with_capacity(pieces.len());
        for (n, piece) in pieces.iter().enumerate() {
            let piece = piece.trim();
            if piece.is_empty() {
                return Err(format!("term {} is empty", n + 1));
            }
            let (op, rest) = match piece.as_bytes()[0] {
                b'!' => (Op::Exclude, &piece[1..]),
                b'&' => (Op::Intersect, &piece[1..]),
                _ => (Op::Union, piece),
            };
            if rest.trim().is_empty() {
                return Err(format!(
                    "{:?} must be followed by a host or group name",
                    &piece[..1]
                ));
            }
            if rest.starts_with('~') {
                return Err(format!(
                    "regular expressions (~) are not supported, in {piece:?}"
                ));
            }
            let (name, slice) = split_slice(rest.trim());
            let glob = Glob::parse(name).map_err(|message| format!("{message} in {piece:?}"))?;
            terms.push(Term { op, glob, slice });
        }
        Ok(Pattern { terms })
    }

    /// Indices of the selected hosts, in inventory order, each once.
    ///
    /// As Ansible: the plain terms are unioned (all hosts when there is none), then every
    /// `&` term intersects, then every `!` term removes, whatever their order in the pattern.
    pub(crate) fn select(&self, inventory: &Inventory) -> Vec<usize> {
        let count = inventory.hosts().len();
        let mut chosen = vec![false; count];
        let has_union = self.terms.iter().any(|t| t.op == Op::Union);
        if !has_union {
            chosen.iter_mut().for_each(|c| *c = true);
        }
        for op in [Op::Union, Op::Intersect, Op::Exclude] {
            for term in self.terms.iter().filter(|t| t.op == op) {
                let mut matched = vec![false; count];
                for i in term.hosts(inventory) {
                    matched[i] = true;
                }
                for (c, m) in chosen.iter_mut().zip(&matched) {
                    *c = match op {
                        Op::Union => *c || *m,
                        Op::Intersect => *c && *m,
                        Op::Exclude => *c && !*m,
                    };
                }
            }
        }
        (0..count).filter(|&i| chosen[i]).collect()
    }
}

impl Term {
    /// Hosts of one term, in inventory order: hosts of matching groups, plus hosts whose name
    /// matches when no group does or the term looks like a glob or a domain name (Ansible's
    /// rule); then the slice, if any.
    fn hosts(&self, inventory: &Inventory) -> Vec<usize> {
        let mut hit = vec![false; inventory.hosts().len()];
        let mut any_group = false;
        for (group, members) in &inventory.members {
            if self.glob.matches(group) {
                any_group = true;
                members.iter().for_each(|&i| hit[i] = true);
            }
        }
        if !any_group || self.glob.is_magic() || self.glob.source.contains('.') {
            for (i, host) in inventory.hosts().iter().enumerate() {
                if self.glob.matches(&host.name) {
                    hit[i] = true;
                }
            }
        }
        let hosts: Vec<usize> = (0..hit.len()).filter(|&i| hit[i]).collect();
        match &self.slice {
            None => hosts,
            Some(Slice::Index(i)) => {
                let len = hosts.len() as i64;
                let i = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&i) {
                    vec![hosts[i as usize]]
                } else {
                    Vec::new()
                }
            }
            Some(Slice::Range(start, end)) => {
                let start = start.unwrap_or(0);
                let end = end.map_or(hosts.len(), |e| (e + 1).min(hosts.len()));
                hosts
                    .get(start..end)
                    .map(<[usize]>::to_vec)
                    .unwrap_or_default()
            }
        }
    }
}

/// Splits on `,`, or on `:` outside `[…]` when there is no `,`.
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

/// `name[0]`, `name[-1]`, `name[1:3]`, `name[:3]`, `name[2:]` → (name, slice); anything else
/// (such as the glob class `web[0-9]`) is left to the glob.
fn split_slice(term: &str) -> (&str, Option<Slice>) {
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
    if let Some((a, b)) = inside.split_once(':') {
        let (a, b) = (a.trim(), b.trim());
        if (a.is_empty() || digits(a)) && (b.is_empty() || digits(b)) {
            let start = a.parse().ok();
            let end = b.parse().ok();
            return (name, Some(Slice::Range(start, end)));
        }
    } else if digits(inside.strip_prefix('-').unwrap_or(inside)) {
        if let Ok(i) = inside.parse() {
            return (name, Some(Slice::Index(i)));
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

    fn is_magic(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Char(_)))
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
            ("*.example.com", "example.com", false),
            ("web?", "web1", true),
            ("web?", "web12", false),
            ("web[12]", "web2", true),
            ("web[12]", "web3", false),
            ("web[!12]", "web3", true),
            ("n[a-c]x", "nbx", true),
            ("n[a-c]x", "ndx", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*", "", true),
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
    fn parses_terms_and_slices() {
        let p = Pattern::parse("web[0:2]:&prod:!db[-1]").unwrap();
        assert_eq!(p.terms.len(), 3);
        assert_eq!(p.terms[0].slice, Some(Slice::Range(Some(0), Some(2))));
        assert_eq!(p.terms[1].op, Op::Intersect);
        assert_eq!(p.terms[2].op, Op::Exclude);
        assert_eq!(p.terms[2].slice, Some(Slice::Index(-1)));
        let p = Pattern::parse(" a , b[1:] ").unwrap();
        assert_eq!(p.terms[1].slice, Some(Slice::Range(Some(1), None)));
        assert_eq!(p.terms[0].glob.source, "a");
        // A class is a glob, not a slice.
        let p = Pattern::parse("web[0-9]").unwrap();
        assert_eq!(p.terms[0].slice, None);
    }

    #[test]
    fn rejects_bad_patterns() {
        let cases = [
            ("", "the pattern is empty"),
            ("a,,b", "term 2 is empty"),
            ("a:", "term 2 is empty"),
            ("!", "\"!\" must be followed by a host or group name"),
            ("web,&", "\"&\" must be followed by a host or group name"),
            ("web[1", "unclosed \"[\" in \"web[1\""),
            (
                "~web.*",
                "regular expressions (~) are not supported, in \"~web.*\"",
            ),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                Pattern::parse(pattern).unwrap_err(),
                want,
                "parsing {pattern:?}"
            );
        }
    }
}

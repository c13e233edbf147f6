//! Reading and editing the flags of the `ExecStart=` command line in a systemd unit file.
//!
//! The parser follows systemd's own rules (conf-parser and `extract_first_word`), because the
//! editor must see exactly the argv systemd will run: a trailing unescaped `\` continues a line
//! and becomes a space, comment lines inside a continuation are skipped (systemd >= 240; a
//! comment outside a continuation never continues), words are split on whitespace with single
//! and double quotes and C escapes, `%%` and `$$` stand for literal `%` and `$`.

use super::{apply_op, plan, validate_edit, FlagEdit, FlagError, Op, UNIT_TARGET};

/// Applies `edits` in order to the single non-empty `ExecStart=` of the `[Service]` section.
///
/// Values are literal: `%` and `$` are written as `%%` and `$$` so systemd passes them through.
pub fn edit_unit_flags(unit_text: &str, edits: &[FlagEdit]) -> Result<String, FlagError> {
    for edit in edits {
        validate_edit(edit, UNIT_TARGET)?;
    }
    let mut text = unit_text.to_string();
    for edit in edits {
        let parsed = Parsed::new(&text)?;
        let ops = plan(&parsed.exec.words(), 1, edit);
        for op in ops {
            let before = Parsed::new(&text)?;
            let mut expected = before.exec.words();
            apply_op(&mut expected, &op);
            let next = apply(&text, &before, &op);
            let after = Parsed::new(&next).map_err(|e| {
                FlagError::Internal(format!(
                    "edit of {} made ExecStart unreadable: {e}",
                    edit.name()
                ))
            })?;
            if after.exec.words() != expected {
                return Err(FlagError::Internal(format!(
                    "edit of {} produced ExecStart {:?}, expected {:?}",
                    edit.name(),
                    after.exec.words(),
                    expected
                )));
            }
            if after.others != before.others {
                return Err(FlagError::Internal(format!(
                    "edit of {} would change settings other than ExecStart",
                    edit.name()
                )));
            }
            text = next;
        }
    }
    Ok(text)
}

/// The argv of the `[Service]` `ExecStart=`, with the `-@:+!|` prefixes stripped from the
/// executable. Specifiers other than `%%` and variables other than `$$` are left as written,
/// since their values depend on the host.
#[cfg(test)]
pub fn unit_exec_start_args(unit_text: &str) -> Result<Vec<String>, FlagError> {
    let parsed = Parsed::new(unit_text)?;
    let mut argv = parsed.exec.words();
    if let Some(first) = argv.first_mut() {
        *first = first
            .trim_start_matches(['-', '@', ':', '+', '!', '|'])
            .to_string();
    }
    Ok(argv)
}

/// One physical line: `start..content_end` is its text, `content_end..end` its terminator.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    content_end: usize,
    end: usize,
}

fn split_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    while start < text.len() {
        let nl = text[start..].find('\n').map(|i| start + i);
        let (content_end, end) = match nl {
            Some(nl) if nl > start && bytes[nl - 1] == b'\r' => (nl - 1, nl + 1),
            Some(nl) => (nl, nl + 1),
            None => (text.len(), text.len()),
        };
        out.push(Line {
            start,
            content_end,
            end,
        });
        start = end;
    }
    out
}

fn is_comment(s: &str) -> bool {
    matches!(s.trim_start().chars().next(), Some('#' | ';'))
}

/// Whether the line ends in an unescaped backslash, systemd's continuation marker.
fn continues(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        escaped = !escaped && c == '\\';
    }
    escaped
}

#[derive(Debug, Clone)]
struct Word {
    start: usize,
    end: usize,
    /// Physical line indices of the word's first and last byte.
    line: usize,
    end_line: usize,
    text: String,
}

#[derive(Debug, Clone)]
struct ExecStart {
    /// Physical lines joined into the setting, without the comment lines systemd skips.
    lines: Vec<usize>,
    words: Vec<Word>,
}

impl ExecStart {
    fn words(&self) -> Vec<String> {
        self.words.iter().map(|w| w.text.clone()).collect()
    }
}

struct Parsed {
    lines: Vec<Line>,
    exec: ExecStart,
    /// Every other logical line as (section, key, value), to prove an edit touched nothing else.
    others: Vec<(String, String, String)>,
}

impl Parsed {
    fn new(text: &str) -> Result<Parsed, FlagError> {
        let lines = split_lines(text);
        let content = |i: usize| &text[lines[i].start..lines[i].content_end];
        let mut section = String::new();
        let mut others = Vec::new();
        let mut found: Vec<(Vec<usize>, String, Vec<usize>)> = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let first = content(i);
            if first.trim().is_empty() || is_comment(first) {
                i += 1;
                continue;
            }
            // Join the logical line; `map` gives, for each byte of `joined`, its offset in `text`.
            let mut parts = vec![i];
            let mut joined = String::new();
            let mut map = Vec::new();
            let mut cur = i;
            loop {
                let s = content(cur);
                let cont = continues(s);
                let keep = if cont { s.len() - 1 } else { s.len() };
                joined.push_str(&s[..keep]);
                map.extend(lines[cur].start..lines[cur].start + keep);
                if !cont {
                    break;
                }
                joined.push(' ');
                map.push(lines[cur].start + keep);
                cur += 1;
                while cur < lines.len() && is_comment(content(cur)) {
                    cur += 1;
                }
                if cur >= lines.len() {
                    break;
                }
                parts.push(cur);
            }
            i = cur + 1;
            let trimmed = joined.trim();
            if trimmed.starts_with('[') {
                section = trimmed
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                continue;
            }
            let Some(eq) = joined.find('=') else {
                others.push((section.clone(), trimmed.to_string(), String::new()));
                continue;
            };
            let key = joined[..eq].trim();
            let value = joined[eq + 1..].trim();
            if section == "Service" && key == "ExecStart" {
                if !value.is_empty() {
                    found.push((parts, joined.clone(), map));
                }
                continue;
            }
            others.push((section.clone(), key.to_string(), value.to_string()));
        }
        let (parts, joined, map) = match found.len() {
            0 => return Err(FlagError::ExecStartNotFound),
            1 => found.pop().expect("one element"),
            _ => {
                return Err(FlagError::MultipleExecStart(
                    found.iter().map(|f| f.0[0] + 1).collect(),
                ))
            }
        };
        let line_of = |off: usize| lines.partition_point(|l| l.end <= off);
        let value_start = joined.find('=').expect("found above") + 1;
        let raw =
            split_words(&joined, value_start).map_err(|reason| FlagError::ExecStartSyntax {
                line: parts[0] + 1,
                reason,
            })?;
        let words = raw
            .into_iter()
            .map(|(s, e, t)| Word {
                start: map[s],
                end: map[e - 1] + 1,
                line: line_of(map[s]),
                end_line: line_of(map[e - 1]),
                text: t,
            })
            .collect();
        Ok(Parsed {
            lines,
            exec: ExecStart {
                lines: parts,
                words,
            },
            others,
        })
    }
}

/// systemd's `cunescape_one`: the decoded char and how many bytes after the backslash it used.
fn unescape_one(rest: &str) -> Option<(char, usize)> {
    let c = rest.chars().next()?;
    let simple = match c {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        '\\' | '"' | '\'' => Some(c),
        's' => Some(' '),
        _ => None,
    };
    if let Some(s) = simple {
        return Some((s, 1));
    }
    let radix_digits = match c {
        'x' => Some((16, 2, 1)),
        'u' => Some((16, 4, 1)),
        'U' => Some((16, 8, 1)),
        '0'..='7' => Some((8, 3, 0)),
        _ => None,
    };
    let (radix, n, skip) = radix_digits?;
    let digits = rest.get(skip..skip + n)?;
    let v = u32::from_str_radix(digits, radix).ok()?;
    // systemd refuses NUL; an invalid escape is then kept literally (CUNESCAPE_RELAX).
    if v == 0 || !digits.chars().all(|d| d.is_digit(radix)) {
        return None;
    }
    char::from_u32(v).map(|ch| (ch, skip + n))
}

/// Splits `s[from..]` into words as systemd's `extract_first_word` with UNQUOTE|CUNESCAPE|
/// CUNESCAPE_RELAX does, then resolves `%%`, `$$` and the lone `\;`. Returns byte spans in `s`.
fn split_words(s: &str, from: usize) -> Result<Vec<(usize, usize, String)>, String> {
    let mut out = Vec::new();
    let mut iter = s[from..]
        .char_indices()
        .map(|(i, c)| (i + from, c))
        .peekable();
    loop {
        while iter
            .next_if(|&(_, c)| matches!(c, ' ' | '\t' | '\n' | '\r'))
            .is_some()
        {}
        let Some(&(start, _)) = iter.peek() else {
            break;
        };
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = start;
        let mut raw_escape_semicolon = false;
        while let Some(&(i, c)) = iter.peek() {
            if quote.is_none() && matches!(c, ' ' | '\t' | '\n' | '\r') {
                break;
            }
            iter.next();
            end = i + c.len_utf8();
            match c {
                '\\' => {
                    let rest = &s[i + 1..];
                    if rest.is_empty() {
                        return Err("trailing backslash".into());
                    }
                    match unescape_one(rest) {
                        Some((ch, used)) => {
                            word.push(ch);
                            for _ in 0..rest[..used].chars().count() {
                                if let Some((j, d)) = iter.next() {
                                    end = j + d.len_utf8();
                                }
                            }
                        }
                        None => {
                            let (j, d) = iter.next().expect("rest is not empty");
                            end = j + d.len_utf8();
                            word.push('\\');
                            word.push(d);
                            raw_escape_semicolon = d == ';';
                        }
                    }
                }
                '"' | '\'' if quote.is_none() => quote = Some(c),
                q if Some(q) == quote => quote = None,
                _ => word.push(c),
            }
        }
        if quote.is_some() {
            return Err("unbalanced quoting".into());
        }
        let text = if raw_escape_semicolon && word == "\\;" {
            ";".to_string()
        } else {
            unescape_specials(&word)
        };
        out.push((start, end, text));
    }
    Ok(out)
}

fn unescape_specials(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        if (c == '%' || c == '$') && chars.peek() == Some(&c) {
            chars.next();
        }
        out.push(c);
    }
    out
}

/// The word as it must be written in ExecStart for systemd to pass `word` through unchanged.
fn encode_word(word: &str) -> String {
    if word == ";" {
        return "\\;".to_string();
    }
    let esc = word.replace('%', "%%").replace('$', "$$");
    let needs_quotes = esc.is_empty()
        || esc
            .chars()
            .any(|c| matches!(c, ' ' | '\t' | '"' | '\'' | '\\') || c.is_whitespace());
    if !needs_quotes {
        return esc;
    }
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    // Quote only the value so the flag name stays plain and greppable: --name="a b".
    match esc.split_once('=') {
        Some((name, value))
            if name.starts_with('-')
                && !name
                    .chars()
                    .any(|c| c.is_whitespace() || "\"'\\".contains(c)) =>
        {
            format!("{name}={}", quote(value))
        }
        _ => quote(&esc),
    }
}

fn apply(text: &str, p: &Parsed, op: &Op) -> String {
    match op {
        Op::Replace { idx, word } => {
            let w = &p.exec.words[*idx];
            splice(text, w.start, w.end, &encode_word(word))
        }
        Op::Delete { idx } => delete(text, p, *idx),
        Op::Append { word } => append(text, p, &encode_word(word)),
    }
}

fn splice(text: &str, start: usize, end: usize, with: &str) -> String {
    let mut s = String::with_capacity(text.len() + with.len());
    s.push_str(&text[..start]);
    s.push_str(with);
    s.push_str(&text[end..]);
    s
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn delete(text: &str, p: &Parsed, idx: usize) -> String {
    let words = &p.exec.words;
    let w = &words[idx];
    let first_line = p.exec.lines[0];
    let alone = w.line != first_line
        && w.line == w.end_line
        && !words
            .iter()
            .enumerate()
            .any(|(j, o)| j != idx && (o.line == w.line || o.end_line == w.line));
    if alone {
        let line = p.lines[w.line];
        let line_text = &text[line.start..line.content_end];
        let is_last = p.exec.lines.last() == Some(&w.line);
        // Without a terminator this is the file's last line; taking the newline before it
        // keeps the file ending the way it did.
        let (cut_from, cut_to) = if line.end == line.content_end && w.line > 0 {
            (p.lines[w.line - 1].content_end, line.end)
        } else {
            (line.start, line.end)
        };
        let mut out = splice(text, cut_from, cut_to, "");
        // The removed line ended the chain: the line before it must stop continuing, or it
        // would swallow whatever setting follows.
        if is_last && !continues(line_text) {
            let pos = p
                .exec
                .lines
                .iter()
                .position(|&l| l == w.line)
                .expect("in chain");
            let prev = p.lines[p.exec.lines[pos - 1]];
            let prev_text = &text[prev.start..prev.content_end];
            let cut = prev_text[..prev_text.len() - 1]
                .trim_end_matches(is_blank)
                .len();
            out = splice(&out, prev.start + cut, prev.content_end, "");
        }
        return out;
    }
    let prev_same_line = idx > 0 && words[idx - 1].end_line == w.line;
    if prev_same_line {
        // Take the blank run before the word: "--a --b \" becomes "--a \".
        let cut = text[..w.start].trim_end_matches(is_blank).len();
        splice(text, cut, w.end, "")
    } else {
        // First word on its line with others after it: keep the indentation, take the gap after.
        let next = text[w.end..].trim_start_matches(is_blank).len();
        let stop = text.len() - next;
        splice(text, w.start, stop, "")
    }
}

fn append(text: &str, p: &Parsed, encoded: &str) -> String {
    let last = p.exec.words.last().expect("ExecStart has an executable");
    let first_line = p.exec.lines[0];
    let multi = p.exec.words.iter().any(|w| w.line != first_line);
    if !multi {
        return splice(text, last.end, last.end, &format!(" {encoded}"));
    }
    let line = p.lines[last.end_line];
    let line_text = &text[line.start..line.content_end];
    let indent: String = line_text.chars().take_while(|&c| is_blank(c)).collect();
    let sep = continuation_sep(text, p);
    let terminator = if line.end > line.content_end {
        text[line.content_end..line.end].to_string()
    } else if text.contains("\r\n") {
        "\r\n".to_string()
    } else {
        "\n".to_string()
    };
    if continues(line_text) {
        // The chain goes on past the last word (to a blank line): keep it going the same way.
        let new_line = format!("{indent}{encoded}{sep}\\{terminator}");
        let at = if line.end > line.content_end {
            line.end
        } else {
            text.len()
        };
        let prefix = if line.end > line.content_end {
            ""
        } else {
            terminator.as_str()
        };
        return splice(text, at, at, &format!("{prefix}{new_line}"));
    }
    // Inserted at the end of the content, so the line's own terminator (or its absence at
    // end of file) now ends the new line.
    let new_tail = format!("{sep}\\{terminator}{indent}{encoded}");
    let content_end = line.start + line_text.trim_end_matches(is_blank).len();
    splice(text, content_end, line.content_end, &new_tail)
}

/// The blanks used before `\` on existing continuation lines, so new lines look the same.
fn continuation_sep(text: &str, p: &Parsed) -> String {
    for &l in &p.exec.lines {
        let line = p.lines[l];
        let s = &text[line.start..line.content_end];
        if continues(s) {
            let body = &s[..s.len() - 1];
            let n = body.len() - body.trim_end_matches(is_blank).len();
            return body[body.len() - n..].to_string();
        }
    }
    " ".to_string()
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn flags_encode_decode_roundtrip() {
        let values = [
            "plain",
            "a b",
            "x\"y",
            "it's",
            "back\\slash",
            "100%",
            "$HOME",
            "$$",
            "%%i",
            "",
            ";",
            "*,bootstrapsigner,tokencleaner",
            "\\n",
            "ünïcode",
        ];
        for v in values {
            for word in [v.to_string(), format!("--f={v}")] {
                let enc = encode_word(&word);
                let line = format!("/bin/x {enc}");
                let got = split_words(&line, 0).unwrap();
                assert_eq!(got.len(), 2, "{word:?} encoded as {enc:?}");
                assert_eq!(got[1].2, word, "{word:?} encoded as {enc:?}");
            }
        }
    }

    #[test]
    fn flags_split_words_like_systemd() {
        let w = |s: &str| -> Vec<String> {
            split_words(s, 0)
                .unwrap()
                .into_iter()
                .map(|x| x.2)
                .collect()
        };
        assert_eq!(w(r#"a "b c" 'd e' f"g h"i"#), ["a", "b c", "d e", "fg hi"]);
        assert_eq!(w(r"a\sb \x41 \101 \q"), ["a b", "A", "A", "\\q"]);
        assert_eq!(w(r"\; ;"), [";", ";"]);
        assert!(split_words("a \"b", 0).is_err());
    }
}

//! Python literals as `ast.literal_eval` reads them, which is how Ansible's INI plugin types
//! `key=value` values: `True`, `None`, `42`, `0x1F`, `1.5`, `'text'`, `[1, 2]`, `{'a': 1}`,
//! `(1, 2)`. Anything else (`yes`, `FALSE`, `010`, `a b`) is not a literal: the caller keeps
//! the text as a string, as Ansible does.

use serde_yaml::{Mapping, Value};

/// The value of `text` as a Python literal, or `None` when `literal_eval` would refuse it.
pub(crate) fn eval(text: &str) -> Option<Value> {
    let mut p = P {
        s: text.trim_start_matches([' ', '\t']).as_bytes(),
        i: 0,
    };
    let value = p.expr()?;
    p.ws();
    if p.i < p.s.len() && p.s[p.i] != b'#' {
        return None;
    }
    Some(value)
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<Value> {
        self.ws();
        match self.peek()? {
            b'+' | b'-' => {
                let negative = self.peek() == Some(b'-');
                self.i += 1;
                match self.expr()? {
                    Value::Number(n) if !negative => Some(Value::Number(n)),
                    Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
                        (Some(i), _) if n.is_i64() || n.is_u64() => Value::Number((-i).into()),
                        (_, Some(f)) => Value::Number((-f).into()),
                        _ => return None,
                    }),
                    Value::Bool(b) => Some(Value::Number(
                        if negative { -(b as i64) } else { b as i64 }.into(),
                    )),
                    _ => None,
                }
            }
            b'[' => {
                self.i += 1;
                Some(Value::Sequence(self.items(b']')?))
            }
            b'(' => {
                self.i += 1;
                let start = self.i;
                let items = self.items(b')')?;
                // `(1)` is 1; `(1,)` and `()` are tuples.
                let inner = &self.s[start..self.i - 1];
                let trailing_comma =
                    inner.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b',');
                if items.len() == 1 && !trailing_comma {
                    return items.into_iter().next();
                }
                Some(Value::Sequence(items))
            }
            b'{' => {
                self.i += 1;
                self.dict()
            }
            b'\'' | b'"' => self.strings(),
            c if c.is_ascii_digit() || c == b'.' => self.number(),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                match word {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::Null),
                    w if matches!(self.peek(), Some(b'\'' | b'"'))
                        && matches!(
                            w.to_ascii_lowercase().as_str(),
                            "r" | "u" | "b" | "br" | "rb"
                        ) =>
                    {
                        self.i = start;
                        self.strings()
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn items(&mut self, close: u8) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.expr()?);
            if self.eat(close) {
                return Some(items);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn dict(&mut self) -> Option<Value> {
        let mut map = Mapping::new();
        if self.eat(b'}') {
            return Some(Value::Mapping(map));
        }
        loop {
            let key = self.expr()?;
            if !self.eat(b':') {
                // A set literal: not JSON-representable; Ansible cannot print one either.
                return None;
            }
            let value = self.expr()?;
            map.insert(key, value);
            if self.eat(b'}') {
                return Some(Value::Mapping(map));
            }
            if !self.eat(b',') {
                return None;
            }
            if self.eat(b'}') {
                return Some(Value::Mapping(map));
            }
        }
    }

    /// One or more adjacent string literals, concatenated as Python does.
    fn strings(&mut self) -> Option<Value> {
        let mut out = String::new();
        let mut any = false;
        loop {
            self.ws();
            let start = self.i;
            let mut raw = false;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphabetic()) {
                let c = self.peek()?.to_ascii_lowercase();
                if !matches!(c, b'r' | b'u' | b'b') {
                    self.i = start;
                    break;
                }
                raw |= c == b'r';
                self.i += 1;
            }
            let Some(q @ (b'\'' | b'"')) = self.peek() else {
                self.i = start;
                break;
            };
            let triple = self.s[self.i..].starts_with(&[q, q, q]);
            self.i += if triple { 3 } else { 1 };
            let mut bytes = Vec::new();
            loop {
                let c = self.peek()?;
                if triple && self.s[self.i..].starts_with(&[q, q, q]) {
                    self.i += 3;
                    break;
                }
                if !triple && c == q {
                    self.i += 1;
                    break;
                }
                if !triple && c == b'\n' {
                    return None;
                }
                if c == b'\\' {
                    let next = *self.s.get(self.i + 1)?;
                    if raw {
                        bytes.extend([c, next]);
                        self.i += 2;
                        continue;
                    }
                    self.i += 2;
                    match next {
                        b'n' => bytes.push(b'\n'),
                        b't' => bytes.push(b'\t'),
                        b'r' => bytes.push(b'\r'),
                        b'0' => bytes.push(0),
                        b'\\' | b'\'' | b'"' => bytes.push(next),
                        b'\n' => {}
                        b'a' => bytes.push(7),
                        b'b' => bytes.push(8),
                        b'f' => bytes.push(12),
                        b'v' => bytes.push(11),
                        b'x' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 2)?).ok()?;
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                            bytes.extend(ch.to_string().as_bytes());
                            self.i += 2;
                        }
                        _ => bytes.extend([b'\\', next]),
                    }
                    continue;
                }
                bytes.push(c);
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&bytes).ok()?);
            any = true;
        }
        any.then_some(Value::String(out))
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
            || ((c == b'+' || c == b'-') && matches!(self.s.get(self.i - 1), Some(b'e' | b'E')) && !self.s[start..self.i].starts_with(b"0x")))
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if text.ends_with(['j', 'J']) || text.ends_with('_') || text.contains("__") {
            return None;
        }
        let clean = text.replace('_', "");
        let lower = clean.to_ascii_lowercase();
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(digits) = lower.strip_prefix(prefix) {
                let digits = digits.strip_prefix('_').unwrap_or(digits);
                return i64::from_str_radix(digits, radix)
                    .ok()
                    .map(|i| Value::Number(i.into()));
            }
        }
        if lower.bytes().all(|b| b.is_ascii_digit()) {
            // Python refuses leading zeros in decimal integers (`010`), except all zeros.
            if lower.len() > 1 && lower.starts_with('0') && lower.bytes().any(|b| b != b'0') {
                return None;
            }
            return match lower.parse::<i64>() {
                Ok(i) => Some(Value::Number(i.into())),
                Err(_) => lower.parse::<u64>().ok().map(|u| Value::Number(u.into())),
            };
        }
        let valid = lower
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
            && lower.bytes().any(|b| b.is_ascii_digit());
        if !valid || lower.matches('.').count() > 1 {
            return None;
        }
        lower.parse::<f64>().ok().map(|f| Value::Number(f.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_as_python_reads_them() {
        let y = |s: &str| serde_yaml::from_str::<Value>(s).unwrap();
        let cases: &[(&str, Option<Value>)] = &[
            ("True", Some(Value::Bool(true))),
            ("None", Some(Value::Null)),
            ("42", Some(y("42"))),
            ("-7", Some(y("-7"))),
            ("0x1F", Some(y("31"))),
            ("1_000", Some(y("1000"))),
            ("1.5", Some(y("1.5"))),
            ("1e3", Some(y("1000.0"))),
            ("'a b'", Some(y("a b"))),
            ("\"x\" 'y'", Some(y("xy"))),
            ("[1, 'two', [3]]", Some(y("[1, two, [3]]"))),
            ("(1, 2)", Some(y("[1, 2]"))),
            ("(1)", Some(y("1"))),
            ("{'a': 1, 'b': [True]}", Some(y("{a: 1, b: [true]}"))),
            ("42 # comment", Some(y("42"))),
            ("yes", None),
            ("FALSE", None),
            ("010", None),
            ("a b", None),
            ("1.2.3", None),
            ("{1, 2}", None),
            ("/usr/bin/python3", None),
            ("1+2", None),
        ];
        for (text, want) in cases {
            assert_eq!(&eval(text), want, "{text}");
        }
    }
}

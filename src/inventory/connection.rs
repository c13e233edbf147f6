//! Connection variables (`ansible_host`, `ansible_port`, …): their names, aliases and typed values.

use serde_yaml::Value;

/// Connection variables and the other spellings Ansible accepts. When a host has more than
/// one spelling, the first listed wins, as in Ansible's ssh plugin (the later entry of its
/// `vars` list wins there): `ansible_ssh_user` over `ansible_user`, and so on.
pub(crate) const HOST: &[&str] = &["ansible_ssh_host", "ansible_host"];
pub(crate) const PORT: &[&str] = &["ansible_ssh_port", "ansible_port"];
pub(crate) const USER: &[&str] = &["ansible_ssh_user", "ansible_user"];
pub(crate) const KEY_FILE: &[&str] = &["ansible_ssh_private_key_file", "ansible_private_key_file"];
pub(crate) const BECOME: &[&str] = &["ansible_become"];
pub(crate) const BECOME_USER: &[&str] = &["ansible_become_user"];
pub(crate) const CONNECTION: &[&str] = &["ansible_connection"];
/// Group variable ordering groups of the same depth (Ansible's default is 1).
pub(crate) const GROUP_PRIORITY: &str = "ansible_group_priority";

/// Checks a variable's value when it is one with a known type; other variables pass.
/// Values holding a template (`{{`) pass too: they can only be checked once rendered.
pub(crate) fn check(var: &str, value: &Value) -> Result<(), String> {
    if matches!(value, Value::String(s) if s.contains("{{") || s.contains("{%")) {
        return Ok(());
    }
    let is = |names: &[&str]| names.contains(&var);
    if is(PORT) {
        port(value).map(drop)
    } else if is(BECOME) {
        boolean(value).map(drop)
    } else if is(CONNECTION) {
        connection(value).map(drop)
    } else if is(HOST) || is(USER) || is(KEY_FILE) || is(BECOME_USER) {
        string(value).map(drop)
    } else if var == GROUP_PRIORITY {
        integer(value).map(drop)
    } else {
        Ok(())
    }
}

/// A port: an integer or a string of digits, 1-65535. Null means unset.
pub(crate) fn port(value: &Value) -> Result<Option<u16>, String> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match number {
        Some(n @ 1..=65535) => Ok(Some(n as u16)),
        _ => Err(format!(
            "expected a port number (1-65535), found {}",
            describe(value)
        )),
    }
}

/// A boolean: true/false, or as Ansible also accepts, yes/no/on/off/1/0 (any case).
pub(crate) fn boolean(value: &Value) -> Result<bool, String> {
    let parsed = match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        format!(
            "expected a boolean (true/false/yes/no), found {}",
            describe(value)
        )
    })
}

/// A string; numbers are taken as their text (`ansible_user: 1000`). Null means unset.
pub(crate) fn string(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(format!("expected a string, found {}", describe(value))),
    }
}

/// `ssh` or `local`.
pub(crate) fn connection(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if s == "ssh" || s == "local" => Ok(s.clone()),
        _ => Err(format!(
            "expected \"ssh\" or \"local\", found {}",
            describe(value)
        )),
    }
}

/// An integer, or a string of one.
pub(crate) fn integer(value: &Value) -> Result<i64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("expected an integer, found {}", describe(value)))
}

/// How a value is named in messages: `"abc"`, `12`, `true`, `null`, `a list`, `a mapping`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn ports() {
        assert_eq!(port(&yaml("22")), Ok(Some(22)));
        assert_eq!(port(&yaml("'2222'")), Ok(Some(2222)));
        assert_eq!(port(&yaml("~")), Ok(None));
        for (text, found) in [
            ("abc", "\"abc\""),
            ("0", "0"),
            ("70000", "70000"),
            ("-1", "-1"),
            ("[1]", "a list"),
        ] {
            assert_eq!(
                port(&yaml(text)),
                Err(format!("expected a port number (1-65535), found {found}"))
            );
        }
    }

    #[test]
    fn booleans() {
        for text in ["true", "yes", "'Yes'", "on", "1", "'true'"] {
            assert_eq!(boolean(&yaml(text)), Ok(true), "{text}");
        }
        for text in ["false", "no", "NO", "off", "0"] {
            assert_eq!(boolean(&yaml(text)), Ok(false), "{text}");
        }
        assert_eq!(
            boolean(&yaml("maybe")),
            Err("expected a boolean (true/false/yes/no), found \"maybe\"".to_string())
        );
    }

    #[test]
    fn strings_connections_and_checks() {
        assert_eq!(string(&yaml("1000")), Ok(Some("1000".to_string())));
        assert_eq!(
            string(&yaml("{a: 1}")),
            Err("expected a string, found a mapping".to_string())
        );
        assert_eq!(connection(&yaml("local")), Ok("local".to_string()));
        assert_eq!(
            connection(&yaml("winrm")),
            Err("expected \"ssh\" or \"local\", found \"winrm\"".to_string())
        );
        assert!(check("ansible_port", &yaml("'{{ base_port }}'")).is_ok());
        assert!(check("ansible_ssh_port", &yaml("abc")).is_err());
        assert!(check("ansible_group_priority", &yaml("x")).is_err());
        assert!(check("some_var", &yaml("[1, 2]")).is_ok());
    }
}

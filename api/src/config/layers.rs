//! The mechanics of layering: reading TOML, merging tables, `OTPD_*` variables, and error
//! messages that name the key or line at fault but never echo its value.
//!
//! A value may be a secret typed on the wrong line (`port = "hunter2"`), so
//! no message built here quotes one.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::DeserializeOwned;

/// Parses a TOML document; a syntax error gives its line and column, not the line's text.
pub fn parse(text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>().map_err(|e| {
        let place = e
            .span()
            .map(|span| position(text, &span))
            .unwrap_or_default();
        format!("{place}{}", e.message())
    })
}

/// `line 3, column 12: ` for the start of `span`.
fn position(text: &str, span: &Range<usize>) -> String {
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    format!("line {line}, column {column}: ")
}

/// Reads `table` as a `T`; an error names the key by its path (`server.port`).
pub fn check<T: DeserializeOwned>(table: &toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let path = e.path().to_string();
        let what = without_values(e.inner().message());
        if path == "." {
            what
        } else {
            format!("{path}: {what}")
        }
    })
}

/// A serde message with any value it quotes left out: `invalid type:
/// string "hunter2", expected u16` becomes `invalid type, expected u16`.
/// Key names (unknown or missing fields) are kept: they are not values.
fn without_values(message: &str) -> String {
    let message = message.trim_end();
    let expected = message
        .rfind(", expected ")
        .map(|at| &message[at + ", expected ".len()..]);
    let kind = ["invalid type", "invalid value", "unknown variant"]
        .into_iter()
        .find(|kind| message.starts_with(kind));
    match (kind, expected) {
        (Some("unknown variant"), Some(expected)) => format!("unknown value, expected {expected}"),
        (Some(kind), Some(expected)) => format!("{kind}, expected {expected}"),
        _ if message.starts_with("unknown field")
            || message.starts_with("missing field")
            || message.starts_with("duplicate field")
            || message.starts_with("invalid length") =>
        {
            message.to_owned()
        }
        _ => "invalid value".to_owned(),
    }
}

/// Merges `from` into `into`, tables key by key.
pub fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                merge(existing, incoming);
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// `OTPD_SERVER_MAX_CONNECTIONS` → `["server", "max_connections"]`, for every
/// setting in `defaults`.
pub fn env_variables(defaults: &toml::Table) -> BTreeMap<String, Vec<String>> {
    fn walk(table: &toml::Table, prefix: &[String], out: &mut BTreeMap<String, Vec<String>>) {
        for (key, value) in table {
            let mut path = prefix.to_vec();
            path.push(key.clone());
            if let toml::Value::Table(inner) = value {
                walk(inner, &path, out);
            } else if path == ["delivery", "sms"] || path == ["server", "tls", "clients"] {
                // A list of tables: set in the file only.
            } else {
                out.insert(format!("OTPD_{}", path.join("_").to_uppercase()), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(defaults, &[], &mut out);
    out
}

/// Sets the setting at `path` from a variable's text, typed like the default there.
pub fn set_from_env(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut node = table;
    for key in parents {
        node = match node.get_mut(key) {
            Some(toml::Value::Table(inner)) => inner,
            _ => return Err("not a setting".into()),
        };
    }
    let value = match node.get(last) {
        Some(toml::Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "not a whole number".to_owned())?,
        Some(toml::Value::Boolean(_)) => match raw.trim() {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err("not true or false".into()),
        },
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_owned()),
    };
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_the_line_but_not_its_text() {
        let err = parse("[delivery.email]\npassword = hunter2\n").unwrap_err();
        assert!(err.starts_with("line 2, column "), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn type_errors_name_the_key_and_the_expected_type_but_not_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Settings {
            port: u16,
            mode: Mode,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Mode {
            Off,
            On,
        }
        let table = parse("port = \"hunter2\"\nmode = \"off\"\n").unwrap();
        let err = check::<Settings>(&table).unwrap_err();
        assert_eq!(err, "port: invalid type, expected u16");
        let table = parse("port = 1\nmode = \"s3cret\"\n").unwrap();
        let err = check::<Settings>(&table).unwrap_err();
        assert!(err.starts_with("mode: unknown value, expected"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn variables_that_do_not_parse_say_what_was_expected_without_the_value() {
        let mut table = parse("[server]\nport = 1\non = true\n").unwrap();
        let err = set_from_env(&mut table, &["server".into(), "port".into()], "hunter2");
        assert_eq!(err.unwrap_err(), "not a whole number");
        let err = set_from_env(&mut table, &["server".into(), "on".into()], "hunter2");
        assert_eq!(err.unwrap_err(), "not true or false");
    }
}

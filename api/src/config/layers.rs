//! The mechanics of layering: reading TOML, merging tables, and `OTPD_*` variables.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

/// Parses a TOML document.
pub fn parse(text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>().map_err(|e| e.to_string())
}

/// Reads `table` as a `T`.
pub fn check<T: DeserializeOwned>(table: &toml::Table) -> Result<T, String> {
    T::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.to_string())
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
            } else if path == ["delivery", "sms"] {
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
            .map_err(|_| format!("{raw:?} is not a whole number"))?,
        Some(toml::Value::Boolean(_)) => match raw.trim() {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err(format!("{raw:?} is not true or false")),
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

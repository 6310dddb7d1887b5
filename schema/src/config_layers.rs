//! How every x0tta6bl4 process reads its configuration: documented defaults (one
//! TOML file embedded in the binary), overridden by a file, then by
//! `X0__SECTION__KEY` environment variables. Shared by the stream job's and the
//! agent's configuration so that one file serves both and both report every problem
//! at once, before anything starts.

const ENV_PREFIX: &str = "X0__";

/// Tables whose keys are free-form (passed through, never checked).
const FREE_FORM: &[&str] = &["kafka.options"];

/// Defaults, file and environment merged into one table, with every problem found
/// on the way (unknown keys, unreadable file). Unknown keys are reported and dropped,
/// so that deserialising the sections reports what else is wrong.
#[derive(Debug, Clone)]
pub struct ConfigLayers {
    /// The embedded defaults.
    pub defaults: toml::Table,
    /// Defaults with the file and the environment laid over them.
    pub merged: toml::Table,
    /// Everything wrong so far, one line each.
    pub problems: Vec<String>,
}

impl ConfigLayers {
    /// Lays `file` and then `env` (pairs like `("X0__KAFKA__BROKERS", "k:9092")`)
    /// over `defaults_toml`, which must parse.
    pub fn load(
        defaults_toml: &str,
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let defaults: toml::Table = toml::from_str(defaults_toml).expect("embedded defaults parse");
        let mut merged = defaults.clone();
        let mut problems = Vec::new();
        if let Some(path) = file {
            match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<toml::Table>(&t).map_err(|e| e.to_string()))
            {
                Ok(user) => {
                    unknown_keys(&user, &defaults, "", &mut problems);
                    merge(&mut merged, user);
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else { continue };
            let overlay = env_overlay(rest, &value);
            let before = problems.len();
            unknown_keys(&overlay, &defaults, "", &mut problems);
            for p in &mut problems[before..] {
                *p = format!("{p} (from environment variable {key})");
            }
            merge(&mut merged, overlay);
        }
        prune(&mut merged, &defaults, "");
        ConfigLayers { defaults, merged, problems }
    }

    /// Section `name` of the merged table as a `T`; when it does not deserialise, the
    /// problem is recorded and the section's default stands in, so that one bad section
    /// neither hides the others nor stops the checks that follow.
    pub fn section<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> T {
        if let Some(v) = self.merged.get(name).cloned() {
            match v.try_into() {
                Ok(parsed) => return parsed,
                Err(e) => self.problems.push(format!("{name}: {}", e.to_string().trim().replace('\n', " "))),
            }
        }
        let v = self.defaults.get(name).cloned().unwrap_or(toml::Value::Table(toml::Table::new()));
        v.try_into().unwrap_or_else(|e| panic!("embedded default section {name} deserialises: {e}"))
    }

    /// The problems found, plus `more` (the checks that need more than types), as the
    /// loader's result.
    pub fn finish<T>(self, value: T, more: Vec<String>) -> Result<T, ConfigErrors> {
        let mut problems = self.problems;
        problems.extend(more);
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

/// Everything wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[error("configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

/// `SECTION__KEY=value` as a nested table; the value is TOML when it parses as one,
/// else a string.
fn env_overlay(path: &str, value: &str) -> toml::Table {
    let path: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or(toml::Value::String(value.to_string()));
    let mut overlay = toml::Table::new();
    let mut slot = &mut overlay;
    for p in &path[..path.len() - 1] {
        slot = slot
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("fresh table");
    }
    slot.insert(path[path.len() - 1].clone(), parsed);
    overlay
}

fn unknown_keys(user: &toml::Table, defaults: &toml::Table, prefix: &str, problems: &mut Vec<String>) {
    for (k, v) in user {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match defaults.get(k) {
            None => problems.push(format!("unknown key {path}")),
            Some(_) if FREE_FORM.contains(&path.as_str()) => {}
            Some(toml::Value::Table(d)) => match v {
                toml::Value::Table(u) => unknown_keys(u, d, &path, problems),
                _ => problems.push(format!("{path} must be a table")),
            },
            Some(_) => {}
        }
    }
}

/// Removes keys the defaults do not have (free-form tables excepted).
fn prune(table: &mut toml::Table, defaults: &toml::Table, prefix: &str) {
    table.retain(|k, _| defaults.contains_key(k));
    for (k, v) in table.iter_mut() {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if let (toml::Value::Table(t), Some(toml::Value::Table(d))) = (v, defaults.get(k)) {
            if !FREE_FORM.contains(&path.as_str()) {
                prune(t, d, &path);
            }
        }
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

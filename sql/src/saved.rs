//! Saved queries: `sql/queries/*.sql`, embedded at build time so the binary carries them.

/// A named, documented query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedQuery {
    pub name: &'static str,
    /// The first comment line of the file.
    pub description: &'static str,
    pub sql: &'static str,
}

macro_rules! saved {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../queries/", $name, ".sql")))),*]
    };
}

const FILES: &[(&str, &str)] = saved!("mttr-by-root-cause", "flapping-links", "failed-actions", "incidents-per-day");

/// Every saved query.
pub fn saved_queries() -> Vec<SavedQuery> {
    FILES
        .iter()
        .map(|(name, sql)| SavedQuery {
            name,
            description: sql.lines().next().unwrap_or("").trim_start_matches("--").trim(),
            sql,
        })
        .collect()
}

/// A saved query by name.
pub fn saved_query(name: &str) -> Option<SavedQuery> {
    saved_queries().into_iter().find(|q| q.name == name)
}

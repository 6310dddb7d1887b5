//! What a node's actuator must not forget when its agent restarts: the commands it
//! answered, with their answers, until they expire; and the actions in force, so the
//! job's repairs come back with the agent instead of being wiped by its baseline.
//!
//! One small JSON file per node, replaced atomically (write, fsync, rename, fsync the
//! directory) after every command that changes it, before the command's result is
//! sent: an answered command is on disk before anyone hears of it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use x0_schema::{Action, ResultStatus};

/// The answer a command got, kept so that a second delivery gets the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// After this the command's own TTL rejects it: its answer can be forgotten.
    pub expires_at: i64,
    pub status: ResultStatus,
    pub reason: String,
    pub applied_at: i64,
}

/// The journal's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contents {
    /// Command id → its answer.
    answered: BTreeMap<String, Answer>,
    /// The actions in force beyond the baseline, one per route or link they set
    /// (a withdraw or a restore removes its replace or drain).
    in_force: BTreeMap<String, Action>,
}

/// A node actuator's memory, on disk or (simulated meshes, tests) in memory only.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    contents: Contents,
    path: Option<PathBuf>,
}

impl Journal {
    /// Reads the journal at `path`, or starts an empty one there.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let contents = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("actuator journal {} is unreadable ({e}); move it away to start afresh", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents::default(),
            Err(e) => return Err(e),
        };
        Ok(Journal { contents, path: Some(path.to_path_buf()) })
    }

    /// The answer command `id` got, if it was handled.
    pub(crate) fn answer(&self, id: &str) -> Option<&Answer> {
        self.contents.answered.get(id)
    }

    /// The actions in force, to replay onto a fresh route target.
    pub(crate) fn in_force(&self) -> Vec<Action> {
        self.contents.in_force.values().cloned().collect()
    }

    /// Forgets an action that can no longer be replayed.
    pub(crate) fn drop_in_force(&mut self, action: &Action) {
        if let Some(key) = slot(action) {
            self.contents.in_force.remove(&key);
        }
    }

    /// Records command `id`'s answer (and, if it was applied, its action), forgetting
    /// answers that expired before `now_ns`; then writes the journal.
    pub(crate) fn record(&mut self, id: &str, action: &Action, answer: Answer, now_ns: i64) -> std::io::Result<()> {
        if answer.status == ResultStatus::Applied {
            // A batch is in force route by route: a later command may change one of them.
            for part in action.parts() {
                let Some(key) = slot(part) else { continue };
                match part {
                    Action::RouteWithdraw { .. } | Action::LinkRestore { .. } => {
                        self.contents.in_force.remove(&key);
                    }
                    _ => {
                        self.contents.in_force.insert(key, part.clone());
                    }
                }
            }
        }
        self.contents.answered.retain(|_, a| a.expires_at >= now_ns);
        self.contents.answered.insert(id.to_string(), answer);
        self.save()
    }

    /// Writes the journal, atomically, if it lives on disk.
    pub(crate) fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let json = serde_json::to_vec(&self.contents).map_err(std::io::Error::other)?;
        x0_schema::replace_file_durably(path, |w| w.write_all(&json)).map(|_| ())
    }
}

/// The route or link an action sets, which a later action on the same one supersedes.
fn slot(action: &Action) -> Option<String> {
    match action {
        Action::RouteReplace { destination, .. } | Action::RouteWithdraw { destination } => {
            Some(format!("route {destination}"))
        }
        Action::LinkDrain { peer } | Action::LinkRestore { peer } => Some(format!("drain {peer}")),
        Action::ProbeRate { .. } => Some("probe rate".to_string()),
        Action::NoOp | Action::RouteBatch { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(at: i64) -> Answer {
        Answer { expires_at: at + 100, status: ResultStatus::Applied, reason: String::new(), applied_at: at }
    }

    #[test]
    fn keeps_what_is_in_force_and_answers_until_they_expire_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.journal.json");
        let mut j = Journal::open(&path).unwrap();
        let replace =
            |d: &str, p: &str| Action::RouteReplace { destination: d.into(), primary: p.into(), backup: None };
        j.record("c1", &replace("n9", "n2"), applied(0), 0).unwrap();
        j.record("c2", &replace("n8", "n3"), applied(10), 10).unwrap();
        j.record("c3", &Action::RouteWithdraw { destination: "n9".into() }, applied(20), 20).unwrap();
        j.record("c4", &Action::LinkDrain { peer: "n4".into() }, applied(30), 30).unwrap();
        // c1 expired at 100: forgotten when c5 is recorded at 105.
        let refused = Answer { expires_at: 300, status: ResultStatus::Failed, reason: "no".into(), applied_at: 105 };
        j.record("c5", &replace("n7", "n5"), refused.clone(), 105).unwrap();

        let j = Journal::open(&path).unwrap();
        assert_eq!(j.in_force(), vec![Action::LinkDrain { peer: "n4".into() }, replace("n8", "n3")]);
        assert!(j.answer("c1").is_none());
        assert_eq!(j.answer("c5"), Some(&refused));
        assert_eq!(j.answer("c2").map(|a| a.status), Some(ResultStatus::Applied));
    }

    #[test]
    fn an_unreadable_journal_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.journal.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let e = Journal::open(&path).unwrap_err();
        assert!(e.to_string().contains("move it away"), "{e}");
    }
}

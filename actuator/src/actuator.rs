//! Command verification and the exactly-once application of commands.

use crate::journal::{Answer, Journal};
use crate::RouteTarget;
use std::path::Path;
use x0_schema::{Action, CommandError, CommandResult, HealingCommand, ResultStatus, VerifyingKey};

/// One node's actuator.
pub struct Actuator<T> {
    node: String,
    key: VerifyingKey,
    /// Commands already handled, with their answers, until they expire (a second
    /// delivery gets the first answer; afterwards the command's TTL rejects it), and
    /// the actions in force.
    journal: Journal,
    target: T,
    /// Commands handed to the target (a duplicate is not).
    applications: u64,
}

impl<T: RouteTarget> Actuator<T> {
    /// An actuator for `node` that accepts commands signed by `key` and applies them to
    /// `target`, remembering what it handled in memory only (simulated meshes).
    pub fn new(node: impl Into<String>, key: VerifyingKey, target: T) -> Self {
        Actuator { node: node.into(), key, journal: Journal::default(), target, applications: 0 }
    }

    /// The same, remembering in the journal file at `path` (a node agent's): the
    /// actions in force when the last process stopped are applied to `target` again
    /// (the job's repairs survive an agent restart) and the commands it answered get
    /// the same answer if delivered again. An action that no longer applies (its
    /// neighbour is gone) is dropped with a warning.
    pub fn with_journal(
        node: impl Into<String>,
        key: VerifyingKey,
        mut target: T,
        path: &Path,
    ) -> std::io::Result<Self> {
        let mut journal = Journal::open(path)?;
        let node = node.into();
        for action in journal.in_force() {
            if let Err(e) = target.apply(&action) {
                tracing::warn!(%node, ?action, error = %e, "an action in force no longer applies; dropped");
                journal.drop_in_force(&action);
            }
        }
        journal.save()?;
        Ok(Actuator { node, key, journal, target, applications: 0 })
    }

    /// The node it acts for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where its commands land.
    pub fn target(&self) -> &T {
        &self.target
    }

    /// Commands it handed to its target since it started (duplicates and refusals
    /// are not).
    pub fn applications(&self) -> u64 {
        self.applications
    }

    /// The target, for maintenance the target does on its own (no command involved).
    pub fn target_mut(&mut self) -> &mut T {
        &mut self.target
    }

    /// Handles one command's wire bytes at `now_ns`; never panics, always answers.
    pub fn handle(&mut self, bytes: &[u8], now_ns: i64) -> CommandResult {
        let answer = |status, reason: String, command_id: String, routes| CommandResult {
            schema_version: x0_schema::SCHEMA_VERSION,
            command_id,
            node: self.node.clone(),
            status,
            reason,
            applied_at: now_ns,
            routes,
        };
        let cmd = match HealingCommand::from_json(bytes) {
            Ok(c) => c,
            Err(e) => {
                let id = HealingCommand::id_of_malformed(bytes).unwrap_or_default();
                return answer(ResultStatus::Rejected, e.to_string(), id, self.target.routes());
            }
        };
        if let Err(reason) = self.check(&cmd, now_ns) {
            return answer(ResultStatus::Rejected, reason, cmd.id.clone(), touched(&self.target, &cmd.action));
        }
        // A second delivery (the job replaying after a restart, the broker redelivering)
        // gets the first answer: a duplicate is never a refusal. A command that failed
        // is not retried under the same id either (the planner issues a new one).
        if let Some(first) = self.journal.answer(&cmd.id) {
            let mut r = answer(first.status, first.reason.clone(), cmd.id.clone(), touched(&self.target, &cmd.action));
            r.applied_at = first.applied_at;
            return r;
        }
        self.applications += 1;
        let (status, reason) = match self.target.apply(&cmd.action) {
            Ok(()) => (ResultStatus::Applied, String::new()),
            Err(e) => (ResultStatus::Failed, e.to_string()),
        };
        let first = Answer { expires_at: cmd.expires_at, status, reason: reason.clone(), applied_at: now_ns };
        if let Err(e) = self.journal.record(&cmd.id, &cmd.action, first, now_ns) {
            // The route is changed; only its memory across a restart is at risk.
            tracing::error!(node = %self.node, error = %e, "actuator journal not written");
        }
        answer(status, reason, cmd.id.clone(), touched(&self.target, &cmd.action))
    }

    fn check(&self, cmd: &HealingCommand, now_ns: i64) -> Result<(), String> {
        if cmd.target != self.node {
            return Err(format!("command is for {}, this is {}", cmd.target, self.node));
        }
        cmd.verify(&self.key, now_ns).map_err(|e: CommandError| e.to_string())
    }
}

/// A result's reason as one of a few fixed classes, for a metric label (the reason
/// itself is free text): `none` (applied), `malformed`, `unsigned`, `bad_signature`,
/// `version`, `expired`, `wrong_target`, `invalid` (impossible here), `target`
/// (the kernel failed), `other`. Read from the words this actuator writes.
pub fn reason_class(r: &CommandResult) -> &'static str {
    const CLASSES: [(&str, &str); 8] = [
        ("malformed command", "malformed"),
        ("unsigned command", "unsigned"),
        ("bad signature", "bad_signature"),
        ("schema version", "version"),
        ("expired", "expired"),
        ("command is for", "wrong_target"),
        ("cannot apply", "invalid"),
        ("target failed", "target"),
    ];
    if r.status == ResultStatus::Applied {
        return "none";
    }
    CLASSES.iter().find(|(prefix, _)| r.reason.starts_with(prefix)).map_or("other", |(_, class)| class)
}

/// The routes a command touched, for its answer: its destination's, or every one of
/// ours for a drain, a restore or a no-op. The whole table on every answer made a
/// repair of k routes on one node cost k² entries on the results topic.
fn touched<T: RouteTarget>(target: &T, action: &Action) -> Vec<x0_schema::RouteEntry> {
    let mut routes = target.routes();
    let destinations: std::collections::HashSet<&str> = action.parts().iter().filter_map(Action::destination).collect();
    if !destinations.is_empty() {
        routes.retain(|r| destinations.contains(r.destination.as_str()));
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TargetError;
    use x0_schema::{generate_signing_key, Action, RouteEntry, SigningKey};

    #[test]
    fn every_refusal_has_its_reason_class() {
        let key = generate_signing_key();
        let mut a = Actuator::new("n1", key.verifying_key(), Table::default());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{".to_vec(), "malformed"),
            (signed(&key, "a", "n2", 10_000), "wrong_target"),
            (signed(&key, "b", "n1", 1), "expired"),
            (signed(&generate_signing_key(), "c", "n1", 10_000), "bad_signature"),
        ];
        for (bytes, class) in cases {
            assert_eq!(reason_class(&a.handle(&bytes, 2_000)), class);
        }
        for e in [CommandError::Unsigned, CommandError::Version(9), CommandError::Malformed("x".into())] {
            let r = CommandResult { reason: e.to_string(), ..a.handle(b"{", 0) };
            assert_ne!(reason_class(&r), "other", "{e}");
        }
        for (e, class) in [(TargetError::Invalid("x".into()), "invalid"), (TargetError::Failed("x".into()), "target")] {
            let r = CommandResult { status: ResultStatus::Failed, reason: e.to_string(), ..a.handle(b"{", 0) };
            assert_eq!(reason_class(&r), class);
        }
        assert_eq!(reason_class(&a.handle(&signed(&key, "d", "n1", 10_000), 2_000)), "none");
    }

    #[derive(Default)]
    struct Table {
        applied: Vec<Action>,
    }

    impl RouteTarget for Table {
        fn apply(&mut self, action: &Action) -> Result<(), TargetError> {
            if let Action::RouteReplace { primary, .. } = action {
                if primary == "nowhere" {
                    return Err(TargetError::Invalid("nowhere is not a neighbour".into()));
                }
            }
            self.applied.push(action.clone());
            Ok(())
        }
        fn routes(&self) -> Vec<RouteEntry> {
            vec![]
        }
    }

    fn signed(key: &SigningKey, id: &str, target: &str, expires_at: i64) -> Vec<u8> {
        let mut c = HealingCommand {
            schema_version: x0_schema::SCHEMA_VERSION,
            id: id.into(),
            incident_id: "i".into(),
            issued_at: 0,
            expires_at,
            target: target.into(),
            action: Action::RouteReplace { destination: "n9".into(), primary: "n2".into(), backup: None },
            signature: String::new(),
        };
        c.sign(key);
        c.to_json()
    }

    fn actuator(key: &SigningKey) -> Actuator<Table> {
        Actuator::new("n1", key.verifying_key(), Table::default())
    }

    #[test]
    fn applies_a_good_command_once_and_answers_its_second_delivery_the_same() {
        let key = generate_signing_key();
        let mut a = actuator(&key);
        let bytes = signed(&key, "c1", "n1", 1_000);
        let first = a.handle(&bytes, 10);
        assert_eq!(first.status, ResultStatus::Applied);
        assert_eq!(a.handle(&bytes, 20), first);
        assert_eq!(a.target().applied.len(), 1);
        // Once expired, its TTL rejects it.
        assert_eq!(a.handle(&bytes, 2_000).status, ResultStatus::Rejected);
    }

    #[test]
    fn a_restarted_actuator_reapplies_what_was_in_force_and_remembers_its_answers() {
        let key = generate_signing_key();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.journal.json");
        let bytes = signed(&key, "c1", "n1", 1_000);
        let first = {
            let mut a = Actuator::with_journal("n1", key.verifying_key(), Table::default(), &path).unwrap();
            a.handle(&bytes, 10)
        };
        let mut again = Actuator::with_journal("n1", key.verifying_key(), Table::default(), &path).unwrap();
        assert_eq!(again.target().applied.len(), 1, "the route in force is applied to the fresh target");
        assert_eq!(again.handle(&bytes, 20), first, "a redelivery gets the first answer");
        assert_eq!(again.target().applied.len(), 1, "and is not applied again");
    }

    #[test]
    fn rejects_unsigned_badly_signed_expired_misaddressed_and_unknown_actions() {
        let key = generate_signing_key();
        let mut a = actuator(&key);
        let unsigned = String::from_utf8(signed(&key, "u", "n1", 1_000)).unwrap();
        let unsigned = serde_json_strip_signature(&unsigned);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (unsigned.into_bytes(), "unsigned"),
            (signed(&generate_signing_key(), "b", "n1", 1_000), "bad signature"),
            (signed(&key, "e", "n1", 5), "expired"),
            (signed(&key, "m", "n7", 1_000), "is for n7"),
            (
                String::from_utf8(signed(&key, "x", "n1", 1_000))
                    .unwrap()
                    .replace("route-replace", "exec")
                    .into_bytes(),
                "unknown variant",
            ),
            (b"\x00\x01garbage".to_vec(), "malformed"),
        ];
        for (bytes, why) in cases {
            let r = a.handle(&bytes, 10);
            assert_eq!(r.status, ResultStatus::Rejected, "{why}");
            assert!(r.reason.contains(why), "expected {why:?} in {:?}", r.reason);
        }
        assert!(a.target().applied.is_empty());
    }

    #[test]
    fn a_target_failure_is_reported_and_not_retried_under_the_same_id() {
        let key = generate_signing_key();
        let mut a = actuator(&key);
        let mut c = HealingCommand::from_json(&signed(&key, "f", "n1", 1_000)).unwrap();
        c.action = Action::RouteReplace { destination: "n9".into(), primary: "nowhere".into(), backup: None };
        c.sign(&key);
        let r = a.handle(&c.to_json(), 10);
        assert_eq!((r.status, r.reason.contains("not a neighbour")), (ResultStatus::Failed, true));
        let again = a.handle(&c.to_json(), 11);
        assert_eq!((again.status, again.reason), (ResultStatus::Failed, r.reason));
        assert_eq!(a.target().applied.len(), 0);
    }

    fn serde_json_strip_signature(json: &str) -> String {
        let start = json.find(",\"signature\"").expect("has signature");
        format!("{}}}", &json[..start])
    }
}

//! Command verification and the at-most-once application of commands.

use crate::RouteTarget;
use std::collections::HashMap;
use x0_schema::{CommandError, CommandResult, HealingCommand, ResultStatus, VerifyingKey};

/// One node's actuator.
pub struct Actuator<T> {
    node: String,
    key: VerifyingKey,
    /// Ids of commands already handled, with their expiry: a replay is rejected while
    /// the command could still be valid; afterwards its TTL rejects it anyway.
    seen: HashMap<String, i64>,
    target: T,
}

impl<T: RouteTarget> Actuator<T> {
    /// An actuator for `node` that accepts commands signed by `key` and applies them to `target`.
    pub fn new(node: impl Into<String>, key: VerifyingKey, target: T) -> Self {
        Actuator { node: node.into(), key, seen: HashMap::new(), target }
    }

    /// The node it acts for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where its commands land.
    pub fn target(&self) -> &T {
        &self.target
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
            return answer(ResultStatus::Rejected, reason, cmd.id, self.target.routes());
        }
        // Remember the id before applying: a command that failed is not retried under
        // the same id either (the planner issues a new one).
        self.seen.retain(|_, exp| *exp >= now_ns);
        self.seen.insert(cmd.id.clone(), cmd.expires_at);
        match self.target.apply(&cmd.action) {
            Ok(()) => answer(ResultStatus::Applied, String::new(), cmd.id, self.target.routes()),
            Err(e) => answer(ResultStatus::Failed, e.to_string(), cmd.id, self.target.routes()),
        }
    }

    fn check(&self, cmd: &HealingCommand, now_ns: i64) -> Result<(), String> {
        if cmd.target != self.node {
            return Err(format!("command is for {}, this is {}", cmd.target, self.node));
        }
        cmd.verify(&self.key, now_ns).map_err(|e: CommandError| e.to_string())?;
        if self.seen.contains_key(&cmd.id) {
            return Err(format!("command {} was already applied (replay)", cmd.id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TargetError;
    use x0_schema::{generate_signing_key, Action, RouteEntry, SigningKey};

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
    fn applies_a_good_command_once_and_rejects_its_replay() {
        let key = generate_signing_key();
        let mut a = actuator(&key);
        let bytes = signed(&key, "c1", "n1", 1_000);
        assert_eq!(a.handle(&bytes, 10).status, ResultStatus::Applied);
        let replay = a.handle(&bytes, 20);
        assert_eq!(replay.status, ResultStatus::Rejected);
        assert!(replay.reason.contains("replay"), "{}", replay.reason);
        assert_eq!(a.target().applied.len(), 1);
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
        assert_eq!(a.handle(&c.to_json(), 11).status, ResultStatus::Rejected);
    }

    fn serde_json_strip_signature(json: &str) -> String {
        let start = json.find(",\"signature\"").expect("has signature");
        format!("{}}}", &json[..start])
    }
}

//! Healing commands: a closed set of actions, signed with ed25519, with a TTL and an
//! idempotency key. No action ever names a shell command.

use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// What a command asks a node to do. The set is closed: anything else fails to parse
/// and is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Route `destination` via `primary`, failing over to `backup` (a neighbour on a
    /// disjoint path) when the primary link loses carrier.
    RouteReplace {
        /// The destination node.
        destination: String,
        /// The neighbour to route through.
        primary: String,
        /// The neighbour the kernel fails over to on carrier loss.
        backup: Option<String>,
    },
    /// Remove our route for `destination`, returning it to the node's baseline.
    RouteWithdraw {
        /// The destination node.
        destination: String,
    },
    /// Stop forwarding over the link to `peer` (routes through it are moved off).
    LinkDrain {
        /// The neighbour at the link's other end.
        peer: String,
    },
    /// Undo a drain.
    LinkRestore {
        /// The neighbour at the link's other end.
        peer: String,
    },
    /// Change the active probe interval.
    ProbeRate {
        /// The new interval between probes.
        interval_ms: u32,
    },
    /// Do nothing (used to test the command path end to end).
    NoOp,
    /// Several route replacements and withdrawals on one node, each for a different
    /// destination, applied together: all of them or none. A repair moves hundreds
    /// of routes on the nodes beside a fault; one command each cost a signature, a
    /// message and an answer per route.
    RouteBatch {
        /// `route-replace` and `route-withdraw` actions only.
        routes: Vec<Action>,
    },
}

/// Routes one batch may carry (about 100 bytes of JSON each).
pub const MAX_BATCH_ROUTES: usize = 512;

impl Action {
    /// A short label for tables and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RouteReplace { .. } => "route-replace",
            Action::RouteWithdraw { .. } => "route-withdraw",
            Action::LinkDrain { .. } => "link-drain",
            Action::LinkRestore { .. } => "link-restore",
            Action::ProbeRate { .. } => "probe-rate",
            Action::NoOp => "no-op",
            Action::RouteBatch { .. } => "route-batch",
        }
    }

    /// The single actions it stands for: a batch's routes, or itself.
    pub fn parts(&self) -> &[Action] {
        match self {
            Action::RouteBatch { routes } => routes,
            other => std::slice::from_ref(other),
        }
    }

    /// The destination a route action is about.
    pub fn destination(&self) -> Option<&str> {
        match self {
            Action::RouteReplace { destination, .. } | Action::RouteWithdraw { destination } => Some(destination),
            _ => None,
        }
    }

    /// Whether it is well formed beyond its syntax: a batch holds between 1 and
    /// [`MAX_BATCH_ROUTES`] route actions, no two for the same destination.
    pub fn check(&self) -> Result<(), String> {
        let Action::RouteBatch { routes } = self else { return Ok(()) };
        if routes.is_empty() || routes.len() > MAX_BATCH_ROUTES {
            return Err(format!("a route batch holds 1 to {MAX_BATCH_ROUTES} routes, not {}", routes.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for r in routes {
            let Some(d) = r.destination() else {
                return Err(format!("a route batch holds route actions only, not {}", r.kind()));
            };
            if !seen.insert(d) {
                return Err(format!("a route batch names destination {d} twice"));
            }
        }
        Ok(())
    }

    /// `changes` (route actions for one node) as few actions as possible: one action
    /// alone, more as batches of at most [`MAX_BATCH_ROUTES`]. A destination changed
    /// twice starts a new batch, so the order holds.
    pub fn batched(changes: Vec<Action>) -> Vec<Action> {
        fn flush(batch: &mut Vec<Action>, out: &mut Vec<Action>) {
            match batch.len() {
                0 => {}
                1 => out.extend(batch.pop()),
                _ => out.push(Action::RouteBatch { routes: std::mem::take(batch) }),
            }
        }
        let (mut out, mut batch, mut seen) = (Vec::new(), Vec::new(), std::collections::HashSet::new());
        for c in changes {
            let fits = batch.len() < MAX_BATCH_ROUTES && c.destination().is_some_and(|d| !seen.contains(d));
            if !fits {
                flush(&mut batch, &mut out);
                seen.clear();
            }
            match c.destination() {
                Some(d) => {
                    seen.insert(d.to_string());
                    batch.push(c);
                }
                None => out.push(c),
            }
        }
        flush(&mut batch, &mut out);
        out
    }
}

/// A signed healing command, as it travels on `x0.commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealingCommand {
    /// Layout version; covered by the signature.
    #[serde(default = "crate::telemetry::schema_version")]
    pub schema_version: u16,
    /// Unique id; the actuator applies a command id at most once.
    pub id: String,
    /// The incident this command acts for.
    pub incident_id: String,
    /// Nanoseconds since the Unix epoch.
    pub issued_at: i64,
    /// The actuator rejects the command after this instant (ns since epoch).
    pub expires_at: i64,
    /// The node that must apply it.
    pub target: String,
    /// What the node is asked to do (a closed set).
    pub action: Action,
    /// Hex ed25519 signature over [`HealingCommand::canonical_bytes`]; empty = unsigned.
    #[serde(default)]
    pub signature: String,
}

/// Why a command cannot be accepted. These are the sender's fault: retrying the same
/// command never helps.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The bytes are not a command (or name an action outside the closed set).
    #[error("malformed command: {0}")]
    Malformed(String),
    /// The command carries no signature.
    #[error("unsigned command")]
    Unsigned,
    /// The signature does not verify with the configured key.
    #[error("bad signature")]
    BadSignature,
    /// The command was written for a layout this build does not read.
    #[error("schema version {0} is not supported (this build reads {supported})", supported = crate::SCHEMA_VERSION)]
    Version(u16),
    /// The command's TTL has passed.
    #[error("expired {late_ms} ms ago")]
    /// Its `expires_at` has passed.
    Expired {
        /// How long ago it expired.
        late_ms: i64,
    },
}

#[derive(Serialize)]
struct Unsigned<'a> {
    schema_version: u16,
    id: &'a str,
    incident_id: &'a str,
    issued_at: i64,
    expires_at: i64,
    target: &'a str,
    action: &'a Action,
}

impl HealingCommand {
    /// The bytes the signature covers: every field but the signature, as compact JSON
    /// in declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Unsigned {
            schema_version: self.schema_version,
            id: &self.id,
            incident_id: &self.incident_id,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            target: &self.target,
            action: &self.action,
        })
        .expect("commands always serialise")
    }

    /// Signs the command in place.
    pub fn sign(&mut self, key: &SigningKey) {
        self.signature = hex::encode(key.sign(&self.canonical_bytes()).to_bytes());
    }

    /// Checks the signature and the TTL at `now_ns`.
    pub fn verify(&self, key: &VerifyingKey, now_ns: i64) -> Result<(), CommandError> {
        if self.signature.is_empty() {
            return Err(CommandError::Unsigned);
        }
        let raw: [u8; 64] =
            hex::decode(&self.signature).ok().and_then(|v| v.try_into().ok()).ok_or(CommandError::BadSignature)?;
        key.verify(&self.canonical_bytes(), &Signature::from_bytes(&raw)).map_err(|_| CommandError::BadSignature)?;
        if self.schema_version != crate::SCHEMA_VERSION {
            return Err(CommandError::Version(self.schema_version));
        }
        if now_ns > self.expires_at {
            return Err(CommandError::Expired { late_ms: (now_ns - self.expires_at) / 1_000_000 });
        }
        Ok(())
    }

    /// Parses wire bytes. An action outside the closed set is `Malformed`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CommandError> {
        let cmd: HealingCommand = serde_json::from_slice(bytes).map_err(|e| CommandError::Malformed(e.to_string()))?;
        cmd.action.check().map_err(CommandError::Malformed)?;
        Ok(cmd)
    }

    /// The signed command as JSON (what `x0.commands` carries).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("commands always serialise")
    }

    /// Best-effort id of a command that failed to parse, so the rejection can name it.
    pub fn id_of_malformed(bytes: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        v.get("id")?.as_str().map(str::to_string)
    }
}

/// Generates a fresh signing key from the OS random source.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> HealingCommand {
        HealingCommand {
            schema_version: crate::SCHEMA_VERSION,
            id: "c1".into(),
            incident_id: "i1".into(),
            issued_at: 1_000,
            expires_at: 5_000_000_000,
            target: "n1".into(),
            action: Action::RouteReplace { destination: "n9".into(), primary: "n2".into(), backup: Some("n5".into()) },
            signature: String::new(),
        }
    }

    #[test]
    fn signed_command_verifies() {
        let key = generate_signing_key();
        let mut c = cmd();
        c.sign(&key);
        let back = HealingCommand::from_json(&c.to_json()).unwrap();
        assert_eq!(back.verify(&key.verifying_key(), 2_000), Ok(()));
    }

    #[test]
    fn unsigned_tampered_wrong_key_and_expired_are_rejected() {
        let key = generate_signing_key();
        assert_eq!(cmd().verify(&key.verifying_key(), 0), Err(CommandError::Unsigned));

        let mut tampered = cmd();
        tampered.sign(&key);
        tampered.target = "n2".into();
        assert_eq!(tampered.verify(&key.verifying_key(), 0), Err(CommandError::BadSignature));

        let mut other = cmd();
        other.sign(&generate_signing_key());
        assert_eq!(other.verify(&key.verifying_key(), 0), Err(CommandError::BadSignature));

        let mut garbage = cmd();
        garbage.signature = "zz".into();
        assert_eq!(garbage.verify(&key.verifying_key(), 0), Err(CommandError::BadSignature));

        let mut c = cmd();
        c.sign(&key);
        assert_eq!(c.verify(&key.verifying_key(), 5_002_000_000), Err(CommandError::Expired { late_ms: 2 }));
    }

    #[test]
    fn a_future_layout_version_is_rejected_even_when_signed() {
        let key = generate_signing_key();
        let mut c = cmd();
        c.schema_version = 2;
        c.sign(&key);
        assert_eq!(c.verify(&key.verifying_key(), 0), Err(CommandError::Version(2)));
    }

    fn replace(d: &str) -> Action {
        Action::RouteReplace { destination: d.into(), primary: "n2".into(), backup: None }
    }

    #[test]
    fn route_changes_batch_in_order_and_within_bounds() {
        let one = Action::batched(vec![replace("n3")]);
        assert_eq!(one, vec![replace("n3")]);
        let changes: Vec<Action> = (0..MAX_BATCH_ROUTES + 3).map(|i| replace(&format!("n{i}"))).collect();
        let batches = Action::batched(changes.clone());
        assert_eq!(batches.len(), 2);
        assert_eq!(batches.iter().flat_map(|b| b.parts()).cloned().collect::<Vec<_>>(), changes);
        assert!(batches.iter().all(|b| b.check().is_ok()));
        // The same destination twice: the second starts a new batch.
        let twice = Action::batched(vec![
            replace("n3"),
            replace("n4"),
            Action::RouteWithdraw { destination: "n3".into() },
            Action::NoOp,
        ]);
        assert_eq!(twice.len(), 3, "{twice:?}");
        assert_eq!(twice[1], Action::RouteWithdraw { destination: "n3".into() });
        assert_eq!(twice[2], Action::NoOp);
    }

    #[test]
    fn a_batch_outside_the_rules_is_malformed() {
        let key = generate_signing_key();
        for (routes, why) in [
            (vec![], "1 to"),
            (vec![replace("n3"), Action::NoOp], "route actions only"),
            (vec![replace("n3"), Action::RouteBatch { routes: vec![replace("n4")] }], "route actions only"),
            (vec![replace("n3"), replace("n3")], "twice"),
        ] {
            let mut c = cmd();
            c.action = Action::RouteBatch { routes };
            c.sign(&key);
            match HealingCommand::from_json(&c.to_json()) {
                Err(CommandError::Malformed(reason)) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
        let mut good = cmd();
        good.action =
            Action::RouteBatch { routes: vec![replace("n3"), Action::RouteWithdraw { destination: "n4".into() }] };
        good.sign(&key);
        assert_eq!(HealingCommand::from_json(&good.to_json()).unwrap().verify(&key.verifying_key(), 0), Ok(()));
    }

    #[test]
    fn unknown_action_is_malformed() {
        let key = generate_signing_key();
        let mut c = cmd();
        c.sign(&key);
        let text = String::from_utf8(c.to_json()).unwrap().replace("route-replace", "run-shell");
        assert!(matches!(HealingCommand::from_json(text.as_bytes()), Err(CommandError::Malformed(_))));
        assert_eq!(HealingCommand::id_of_malformed(text.as_bytes()).as_deref(), Some("c1"));
    }
}

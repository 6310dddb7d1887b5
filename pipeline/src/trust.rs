//! Who may speak for which node. With a fleet secret configured (`keys.fleet_secret`),
//! every telemetry message and command result must carry a MAC under the key of the
//! node it is keyed by, or, for telemetry from a registered third-party producer
//! (`keys.producers`), under that producer's key; and every sample in it must belong to
//! a node the speaker may speak for. Anything else is refused as `unauthenticated` (and
//! dead-lettered by the job). Without a fleet secret nothing is checked: the demo runs
//! so, and says it.

use crate::healing_loop::Rejection;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use x0_schema::{FleetSecret, MessageKey, TelemetryBatch};

/// The DLQ reason label of everything refused here.
pub const UNAUTHENTICATED: &str = "unauthenticated";

/// One third-party producer: its key and the nodes it may report on.
#[derive(Debug, Clone)]
struct Producer {
    key: MessageKey,
    /// `None`: any node.
    nodes: Option<HashSet<String>>,
}

/// The keys the job checks messages against.
#[derive(Debug, Clone)]
pub struct Trust {
    fleet: FleetSecret,
    producers: HashMap<String, Producer>,
    /// Derived node keys, kept: a derivation costs about as much as the MAC of a small
    /// message. Bounded by the nodes that sent an authentic message.
    node_keys: HashMap<Box<str>, MessageKey>,
}

/// Whom an authenticated message speaks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Speaker {
    /// No keys configured: nothing is checked.
    Anyone,
    /// A node, for itself only.
    Node(String),
    /// A third-party producer (its id), for the nodes it is registered for.
    Producer(String),
}

/// `keys.producers`: one table per producer id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProducerEntry {
    /// 64 hex digits.
    key: String,
    /// The nodes it may report on; `["*"]`: any.
    nodes: Vec<String>,
}

fn refuse<T>(reason: String) -> Result<T, Rejection> {
    Err(Rejection { label: UNAUTHENTICATED, reason })
}

impl Trust {
    /// Checks messages against node keys derived from `fleet`.
    pub fn new(fleet: FleetSecret) -> Self {
        Trust { fleet, producers: HashMap::new(), node_keys: HashMap::new() }
    }

    /// Registers a third-party producer that may report on `nodes` (`None`: any node).
    pub fn with_producer(mut self, id: &str, key: MessageKey, nodes: Option<HashSet<String>>) -> Self {
        self.producers.insert(id.to_string(), Producer { key, nodes });
        self
    }

    /// From `keys.fleet_secret` and `keys.producers`; `None` when no fleet secret is set.
    pub fn from_files(fleet_secret: &str, producers: &str) -> Result<Option<Trust>, String> {
        if fleet_secret.is_empty() {
            return match producers {
                "" => Ok(None),
                _ => Err("keys.producers is set but keys.fleet_secret is not: nothing would be checked".into()),
            };
        }
        let fleet =
            x0_schema::read_fleet_secret(Path::new(fleet_secret)).map_err(|e| format!("keys.fleet_secret: {e}"))?;
        let mut trust = Trust::new(fleet);
        if !producers.is_empty() {
            let text = std::fs::read_to_string(producers).map_err(|e| format!("keys.producers {producers}: {e}"))?;
            let entries: BTreeMap<String, ProducerEntry> =
                toml::from_str(&text).map_err(|e| format!("keys.producers {producers}: {e}"))?;
            for (id, p) in entries {
                let bytes = hex::decode(p.key.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("keys.producers {producers}: {id}.key must be 64 hex digits"))?;
                let nodes = (!p.nodes.iter().any(|n| n == "*")).then(|| p.nodes.into_iter().collect());
                trust = trust.with_producer(&id, MessageKey::from_bytes(bytes), nodes);
            }
        }
        Ok(Some(trust))
    }

    /// Whether `mac` verifies under `node`'s key. A derived key is kept only once a
    /// message verified under it, so forged names cannot grow the cache.
    fn verify_node(&mut self, node: &str, message_key: &[u8], payload: &[u8], mac: &str) -> bool {
        if let Some(key) = self.node_keys.get(node) {
            return key.verify(message_key, payload, mac);
        }
        let key = self.fleet.node_key(node);
        let ok = key.verify(message_key, payload, mac);
        if ok {
            self.node_keys.insert(node.into(), key);
        }
        ok
    }

    /// Checks a message's MAC: under the key of the node it is keyed by, or of the
    /// producer its `x0-producer` header names.
    pub fn authenticate(
        &mut self,
        message_key: Option<&[u8]>,
        producer: Option<&str>,
        mac: Option<&str>,
        payload: &[u8],
    ) -> Result<Speaker, Rejection> {
        let Some(message_key) = message_key else {
            return refuse("message has no key (the node it speaks for)".into());
        };
        let Some(mac) = mac else { return refuse("message carries no MAC (x0-mac header)".into()) };
        match producer {
            Some(id) => match self.producers.get(id) {
                None => refuse(format!("unknown producer {id:?}")),
                Some(p) if p.key.verify(message_key, payload, mac) => Ok(Speaker::Producer(id.to_string())),
                Some(_) => refuse(format!("MAC does not verify under producer {id}'s key")),
            },
            None => {
                let Ok(name) = std::str::from_utf8(message_key) else {
                    return refuse("message key is not a node id".into());
                };
                if !(mac.trim().len() == 64 && mac.trim().bytes().all(|b| b.is_ascii_hexdigit())) {
                    return refuse("MAC is not 64 hex digits".into());
                }
                if self.verify_node(name, message_key, payload, mac) {
                    Ok(Speaker::Node(name.to_string()))
                } else {
                    refuse(format!("MAC does not verify under {name}'s key"))
                }
            }
        }
    }

    /// Whether every sample of `batch` is one `speaker` may speak for.
    pub fn covers(&self, speaker: &Speaker, batch: &TelemetryBatch) -> Result<(), Rejection> {
        let nodes = batch.links.iter().map(|l| l.node.as_str()).chain(batch.nodes.iter().map(|n| n.node.as_str()));
        let allowed: Box<dyn Fn(&str) -> bool + '_> = match speaker {
            Speaker::Anyone => return Ok(()),
            Speaker::Node(me) => Box::new(move |n| n == me),
            Speaker::Producer(id) => match self.producers.get(id).and_then(|p| p.nodes.as_ref()) {
                None => return Ok(()),
                Some(set) => Box::new(move |n| set.contains(n)),
            },
        };
        match nodes.into_iter().find(|n| !allowed(n)) {
            None => Ok(()),
            Some(other) => {
                let who = match speaker {
                    Speaker::Node(me) => format!("node {me}"),
                    Speaker::Producer(id) => format!("producer {id}"),
                    Speaker::Anyone => unreachable!("returned above"),
                };
                refuse(format!("{who} may not report samples of {other}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0_schema::{NodeSample, Provenance, SCHEMA_VERSION};

    fn batch(nodes: &[&str]) -> TelemetryBatch {
        let sample = |n: &&str| NodeSample {
            ts: 1,
            node: n.to_string(),
            schema_version: SCHEMA_VERSION,
            provenance: Provenance::External,
            cpu: 0.1,
            mem: 0.1,
            softirq: 0.0,
            queue_pressure: 0.0,
            agent_ok: true,
        };
        TelemetryBatch { links: vec![], nodes: nodes.iter().map(sample).collect() }
    }

    #[test]
    fn a_node_speaks_for_itself_only() {
        let fleet = FleetSecret::generate();
        let mut trust = Trust::new(fleet.clone());
        let n1 = fleet.node_key("n1");
        let mac = n1.mac(b"n1", b"p");
        let who = trust.authenticate(Some(b"n1"), None, Some(&mac), b"p").unwrap();
        assert_eq!(who, Speaker::Node("n1".into()));
        assert!(trust.covers(&who, &batch(&["n1", "n1"])).is_ok());
        let e = trust.covers(&who, &batch(&["n1", "n2"])).unwrap_err();
        assert_eq!((e.label, e.reason.as_str()), (UNAUTHENTICATED, "node n1 may not report samples of n2"));
        // n1's key used for a message keyed n2: impersonation.
        let forged = n1.mac(b"n2", b"p");
        let e = trust.authenticate(Some(b"n2"), None, Some(&forged), b"p").unwrap_err();
        assert!(e.reason.contains("n2's key"), "{}", e.reason);
        for (key, mac) in [(None, Some(mac.as_str())), (Some(&b"n1"[..]), None), (Some(&b"n1"[..]), Some("zz"))] {
            assert_eq!(trust.authenticate(key, None, mac, b"p").unwrap_err().label, UNAUTHENTICATED);
        }
    }

    #[test]
    fn a_producer_speaks_for_its_nodes_with_its_own_key() {
        let fleet = FleetSecret::generate();
        let key = MessageKey::generate();
        let mut trust = Trust::new(fleet.clone()).with_producer(
            "snmp",
            key.clone(),
            Some(["r1".to_string()].into_iter().collect()),
        );
        let mac = key.mac(b"r1", b"p");
        let who = trust.authenticate(Some(b"r1"), Some("snmp"), Some(&mac), b"p").unwrap();
        assert!(trust.covers(&who, &batch(&["r1"])).is_ok());
        assert!(trust.covers(&who, &batch(&["r2"])).is_err());
        assert!(trust.authenticate(Some(b"r1"), Some("other"), Some(&mac), b"p").is_err());
        // The fleet's node key is not the producer's.
        let node_mac = fleet.node_key("r1").mac(b"r1", b"p");
        assert!(trust.authenticate(Some(b"r1"), Some("snmp"), Some(&node_mac), b"p").is_err());
    }

    #[test]
    fn producers_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = dir.path().join("fleet.key");
        x0_schema::generate_fleet_secret(&fleet).unwrap();
        let producers = dir.path().join("producers.toml");
        let key = MessageKey::generate();
        let hexkey = key.to_hex();
        std::fs::write(&producers, format!("[snmp]\nkey = \"{hexkey}\"\nnodes = [\"*\"]\n")).unwrap();
        let mut trust = Trust::from_files(fleet.to_str().unwrap(), producers.to_str().unwrap()).unwrap().unwrap();
        let who = trust.authenticate(Some(b"x"), Some("snmp"), Some(&key.mac(b"x", b"p")), b"p").unwrap();
        assert!(trust.covers(&who, &batch(&["anything"])).is_ok());
        std::fs::write(&producers, "[snmp]\nkey = \"abc\"\nnodes = []\n").unwrap();
        let e = Trust::from_files(fleet.to_str().unwrap(), producers.to_str().unwrap()).unwrap_err();
        assert!(e.contains("snmp.key must be 64 hex digits"), "{e}");
        assert!(Trust::from_files("", producers.to_str().unwrap()).is_err());
        assert!(Trust::from_files("", "").unwrap().is_none());
    }
}

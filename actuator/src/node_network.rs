//! What a node agent knows about its place in the mesh: its neighbours (which
//! interface, which address), every destination's address, and the baseline routes
//! (primary and backup next hop) it installs at start. `lab up` writes one per node;
//! a real deployment writes the same file from its own inventory.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// What a node knows of its place in the mesh: its neighbours, every node's address and
/// its baseline routes. Written by the lab (or an operator) as the agent's network file.
pub struct NodeNetwork {
    /// This node's name.
    pub node: String,
    /// The node's own address (a /32 on its loopback).
    pub address: Ipv4Addr,
    /// Its neighbours, one per link.
    pub neighbours: Vec<Neighbour>,
    /// Address of every node in the mesh, this one included.
    pub destinations: BTreeMap<String, Ipv4Addr>,
    /// Baseline routes: destination → primary and backup neighbour.
    #[serde(default)]
    pub baseline: BTreeMap<String, BaselineRoute>,
    /// U-turn routes: for packets arriving from neighbour `from` (failing over to us
    /// because its own primary died) towards `destination`, leave via `via` instead
    /// of sending them back. `from → destination → via`.
    #[serde(default)]
    pub uturn: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// One neighbour and the link to it.
pub struct Neighbour {
    /// The neighbour's node name.
    pub node: String,
    /// Our interface towards it.
    pub iface: String,
    /// Our address on that link.
    pub local: Ipv4Addr,
    /// Its address on that link (the gateway for routes through it).
    pub peer: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// A destination's baseline next hops.
pub struct BaselineRoute {
    /// The neighbour traffic normally goes through.
    pub primary: String,
    /// The neighbour the kernel fails over to.
    pub backup: Option<String>,
}

impl NodeNetwork {
    /// The neighbour named `node`, if it is one.
    pub fn neighbour(&self, node: &str) -> Option<&Neighbour> {
        self.neighbours.iter().find(|n| n.node == node)
    }

    /// Parses a network file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The network file's JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("node networks always serialise")
    }
}

//! A mesh element: the thing a fault, a symptom or a root cause is about.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A link (stored with its endpoints in lexical order) or a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Element {
    /// A link between two nodes.
    Link {
        /// The endpoint first in lexical order.
        a: String,
        /// The other endpoint.
        b: String,
    },
    /// A node.
    Node {
        /// The node's name.
        id: String,
    },
}

impl Element {
    /// A link element; endpoint order does not matter.
    pub fn link(x: &str, y: &str) -> Self {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Element::Link { a: a.to_string(), b: b.to_string() }
    }

    /// A node element.
    pub fn node(id: &str) -> Self {
        Element::Node { id: id.to_string() }
    }

    /// Whether the element touches `node` (is it, or ends there).
    pub fn touches(&self, node: &str) -> bool {
        match self {
            Element::Link { a, b } => a == node || b == node,
            Element::Node { id } => id == node,
        }
    }

    /// Parses the display form: `link a-b` / `node a`.
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, rest) = s.split_once(' ')?;
        match kind {
            "link" => {
                let (a, b) = rest.split_once('-')?;
                Some(Element::link(a, b))
            }
            "node" => Some(Element::node(rest)),
            _ => None,
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Link { a, b } => write!(f, "link {a}-{b}"),
            Element::Node { id } => write!(f, "node {id}"),
        }
    }
}

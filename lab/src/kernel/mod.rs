//! The kernel mesh: the scenario's topology as network namespaces joined by veth
//! pairs, with real agents, real routes, real packets. See `netlab` (build and tear
//! down), `plan` (addresses and baseline routes), `flows` (probe traffic and outage
//! measurement), `faults` (injection) and `babel` (the classic-daemon comparison).

pub mod babel;
pub mod faults;
pub mod flows;
pub mod netlab;
pub mod plan;
pub mod routes;

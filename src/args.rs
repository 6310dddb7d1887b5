//! Flag values from closed sets, as clap value enums (the help lists the choices and a
//! typo is refused with them), mapped onto the crates' own types.

use clap::ValueEnum;
use x0_harness::lab_run::Routing;
use x0_schema::FaultKind;

/// Who routes the lab's mesh.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoutingArg {
    /// Our agents and stream job.
    X0,
    /// Debian's babeld instead of our agents and job.
    Babel,
    /// Our agents' baseline routes and the kernel's failover, no stream job.
    Static,
}

impl From<RoutingArg> for Routing {
    fn from(r: RoutingArg) -> Self {
        match r {
            RoutingArg::X0 => Routing::X0,
            RoutingArg::Babel => Routing::Babel,
            RoutingArg::Static => Routing::Static,
        }
    }
}

/// The faults `lab fault` injects by hand.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LabFaultArg {
    /// Both ends of a link set down.
    LinkDown,
    /// A share of a link's packets dropped (the eBPF fault injector).
    LinkLoss,
    /// Every link of a node down.
    NodeCrash,
}

impl From<LabFaultArg> for FaultKind {
    fn from(k: LabFaultArg) -> Self {
        match k {
            LabFaultArg::LinkDown => FaultKind::LinkDown,
            LabFaultArg::LinkLoss => FaultKind::LinkLoss,
            LabFaultArg::NodeCrash => FaultKind::NodeCrash,
        }
    }
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// An aligned text table.
    Table,
    /// Comma-separated values with a header.
    Csv,
    /// A JSON array of objects.
    Json,
}

impl From<FormatArg> for x0_sql::OutputFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Table => x0_sql::OutputFormat::Table,
            FormatArg::Csv => x0_sql::OutputFormat::Csv,
            FormatArg::Json => x0_sql::OutputFormat::Json,
        }
    }
}

/// Telemetry encoding on the wire.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EncodingArg {
    /// An Arrow IPC stream per message.
    Arrow,
    /// JSON lines.
    Json,
}

impl From<EncodingArg> for x0_schema::ContentType {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Arrow => x0_schema::ContentType::Arrow,
            EncodingArg::Json => x0_schema::ContentType::JsonLines,
        }
    }
}

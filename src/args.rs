//! Flag values from closed sets, as clap value enums (the help lists the choices and a
//! typo is refused with them), for the crates' types that are not value enums
//! themselves: a subset of fault kinds, and the SQL output format (`x0-sql` has no clap).

use clap::ValueEnum;
use x0_schema::FaultKind;

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

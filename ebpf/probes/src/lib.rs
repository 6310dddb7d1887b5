//! Nothing for the host: the programs are in the `x0-probes` binary built for BPF.
//! This library exists so that `ingest` can name this package as a build dependency
//! (how aya-build knows to rebuild the probes when they change).
#![no_std]

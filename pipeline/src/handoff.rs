//! A region's open work, handed from the instance that owned it to the one that takes
//! it over: the stream job's changelog, in the manner of Kafka Streams' state-store
//! changelogs.
//!
//! Whenever an open incident of a region it owns moves (opened, planned, applied,
//! verified, resolved), the owner publishes the region's handoff to `x0.handoff`,
//! keyed by region, on the partition the region's telemetry uses: the open incidents
//! whole (with their commands and results), the faults they route around and the
//! routes installed in their names, and their repair checks. When the consumer group gives an instance a
//! region it did not own (its owner died or the group rebalanced), the instance reads
//! that partition to its end and carries the latest handoff's incidents on under their
//! ids: it withdraws their routes when the faults clear, and a fault still there is
//! the same incident, not a new one. The instance that loses a region forgets its
//! open incidents. Latest wins, so the topic can be compacted.

use crate::incidents::BookSlice;
use crate::planner::PlannerSlice;
use crate::verify::RepairCheck;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use x0_kafka::{rdkafka, KafkaConfig, KafkaError};
use x0_schema::Regions;

/// Bumped when the layout changes; another format is ignored with a warning.
pub const HANDOFF_FORMAT: u32 = 1;

/// One region's open work as its owner last published it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionHandoff {
    /// [`HANDOFF_FORMAT`] when written.
    pub format: u32,
    /// The region.
    pub region: u32,
    /// The incident-id prefix (the job id) of the instance that wrote it.
    pub from: String,
    /// Digest of the inventory it was written over (node ids index it).
    pub inventory: String,
    /// Wall clock when written (ns since the epoch).
    pub written_at_ns: i64,
    pub(crate) book: BookSlice,
    pub(crate) planner: PlannerSlice,
    pub(crate) checks: Vec<(String, RepairCheck)>,
}

impl RegionHandoff {
    /// Open incidents it carries.
    pub fn incidents(&self) -> usize {
        self.book.len()
    }

    /// CBOR, as published.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("a handoff serialises into memory");
        out
    }

    /// From a message's payload.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let h: RegionHandoff = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        if h.format != HANDOFF_FORMAT {
            return Err(format!("handoff format {} (this job reads {HANDOFF_FORMAT})", h.format));
        }
        Ok(h)
    }
}

/// The largest part of a handoff in one message: brokers take 1 MB by default, and the
/// open work of a region repairing 100,000 routes is tens of MB.
pub const HANDOFF_PART_BYTES: usize = 512 * 1024;

/// Header on each part of a handoff: `index/count/generation`. The parts of one
/// handoff share its generation (its `written_at_ns`) and are keyed `region/index`,
/// so that a compacted topic keeps the latest of each part.
pub const HANDOFF_PART_HEADER: &str = "x0-handoff-part";

impl RegionHandoff {
    /// Its encoding in parts of at most `max` bytes, each as (key, part header, bytes).
    pub fn parts(&self, max: usize) -> Vec<(String, String, Vec<u8>)> {
        let bytes = self.to_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(max.max(1)).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("{}/{i}", self.region), format!("{i}/{n}/{}", self.written_at_ns), c.to_vec()))
            .collect()
    }
}

/// One part as stored: (generation, count, bytes).
type Part = (i64, usize, Vec<u8>);

/// Puts handoffs back together from their parts, read in offset order (a handoff's
/// parts are published together, in order, on one partition).
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    parts: BTreeMap<u32, BTreeMap<usize, Part>>,
}

impl Assembler {
    /// Takes one message of the handoff topic; returns its region and the handoff,
    /// when this part completes one (or why the message or the handoff is unusable).
    pub(crate) fn take(
        &mut self,
        key: Option<&[u8]>,
        header: Option<&str>,
        payload: &[u8],
    ) -> Option<(u32, Result<RegionHandoff, String>)> {
        let key = key.and_then(|k| std::str::from_utf8(k).ok()).unwrap_or_default();
        let region: u32 = key.split('/').next()?.parse().ok()?;
        let header = header.unwrap_or_default();
        let mut fields = header.split('/').map(str::parse::<i64>);
        let (Some(Ok(i)), Some(Ok(n)), Some(Ok(generation))) = (fields.next(), fields.next(), fields.next()) else {
            return Some((region, Err(format!("part header {header:?} is not index/count/generation"))));
        };
        let (i, n) = (usize::try_from(i).ok()?, usize::try_from(n).ok()?);
        if i >= n {
            return Some((region, Err(format!("part {i} of {n}"))));
        }
        let parts = self.parts.entry(region).or_default();
        parts.insert(i, (generation, n, payload.to_vec()));
        let complete = (0..n).all(|j| parts.get(&j).is_some_and(|(g, c, _)| *g == generation && *c == n));
        if !complete {
            return None;
        }
        let mut bytes = Vec::new();
        for j in 0..n {
            bytes.extend_from_slice(&parts[&j].2);
        }
        self.parts.remove(&region);
        Some((region, RegionHandoff::from_bytes(&bytes)))
    }
}

/// The partition of the handoff topic (of `partitions`) that carries `region`'s.
pub fn handoff_partition(region: u32, partitions: usize) -> i32 {
    Regions::partition(region, partitions)
}

/// A consumer of every partition of the handoff topic from its start: each instance's
/// view of the others' work (see `Planner::observe_foreign`).
pub(crate) fn watch_handoffs(
    kafka: &KafkaConfig,
    reader_group: &str,
    topic: &str,
    partitions: usize,
) -> Result<StreamConsumer, KafkaError> {
    let consumer = kafka.reader(reader_group)?;
    read_from_start(&consumer, topic, 0..partitions as i32)?;
    Ok(consumer)
}

/// Assigns `consumer` the `partitions` of `topic`, each from its first offset.
fn read_from_start(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(())
}

/// The next message of `view`; never, without one.
pub(crate) async fn next_handoff(
    view: Option<&StreamConsumer>,
) -> Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError> {
    match view {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// The latest handoff of each of `regions` on `topic` (of `partitions`), read from
/// the start of their partitions to their end as of now. Gives up after `within` with
/// what it has, saying so.
pub(crate) async fn read_handoffs(
    kafka: &KafkaConfig,
    reader_group: &str,
    topic: &str,
    partitions: usize,
    regions: &[u32],
    within: Duration,
) -> Result<BTreeMap<u32, RegionHandoff>, KafkaError> {
    let consumer: StreamConsumer = kafka.reader(reader_group)?;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for p in regions.iter().map(|&r| handoff_partition(r, partitions)) {
        let (low, high) = consumer.fetch_watermarks(topic, p, within)?;
        if high > low {
            ends.insert(p, high);
        }
    }
    let mut latest = BTreeMap::new();
    if ends.is_empty() {
        return Ok(latest);
    }
    read_from_start(&consumer, topic, ends.keys().copied())?;
    let deadline = Instant::now() + within;
    let mut parts = Assembler::default();
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading the handoff topic");
                continue;
            }
            Err(_) => {
                tracing::warn!(topic, unread = ?ends, "handoff topic not read to its end in time: taking over with what was read");
                break;
            }
        };
        if ends.get(&m.partition()).is_some_and(|&end| m.offset() + 1 >= end) {
            ends.remove(&m.partition());
        }
        let header = x0_kafka::header(&m, HANDOFF_PART_HEADER);
        match parts.take(m.key(), header, m.payload().unwrap_or_default()) {
            Some((region, Ok(h))) if regions.contains(&region) => {
                latest.insert(region, h);
            }
            Some((region, Err(e))) if regions.contains(&region) => {
                tracing::warn!(region, offset = m.offset(), error = %e, "handoff unreadable; skipped")
            }
            _ => {}
        }
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(region: u32) -> RegionHandoff {
        RegionHandoff {
            format: HANDOFF_FORMAT,
            region,
            from: "job-a".into(),
            inventory: "0123".into(),
            written_at_ns: 1,
            book: BookSlice::default(),
            planner: PlannerSlice::default(),
            checks: vec![],
        }
    }

    #[test]
    fn a_handoff_reads_back_and_another_format_is_refused_with_the_reason() {
        let h = empty(3);
        let back = RegionHandoff::from_bytes(&h.to_bytes()).unwrap();
        assert_eq!((back.region, back.from.as_str(), back.incidents()), (3, "job-a", 0));
        let newer = RegionHandoff { format: HANDOFF_FORMAT + 1, ..empty(3) };
        let err = RegionHandoff::from_bytes(&newer.to_bytes()).unwrap_err();
        assert!(err.contains("handoff format 2"), "{err}");
        assert!(RegionHandoff::from_bytes(b"not cbor").is_err());
        assert_eq!(handoff_partition(3, 2), 1);
    }

    #[test]
    fn a_handoff_in_parts_is_put_back_together_and_only_whole() {
        let mut h = empty(1);
        h.from = "x".repeat(5_000); // about 5 KB: 6 parts of 1,000 bytes
        let parts = h.parts(1_000);
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[0].0, "1/0");
        let mut a = Assembler::default();
        // An older generation's part 2 first (a compacted topic keeps it), then the new
        // handoff: it completes only on its last part, from its own generation.
        let older = RegionHandoff { written_at_ns: 0, ..h.clone() }.parts(1_000);
        assert!(a.take(Some(older[2].0.as_bytes()), Some(older[2].1.as_str()), &older[2].2).is_none());
        for (i, (key, header, bytes)) in parts.iter().enumerate() {
            let got = a.take(Some(key.as_bytes()), Some(header.as_str()), bytes);
            if i + 1 < parts.len() {
                assert!(got.is_none(), "part {i}");
            } else {
                let (region, back) = got.unwrap();
                assert_eq!((region, back.unwrap().from.len()), (1, 5_000));
            }
        }
        let bad = a.take(Some(b"1/0"), Some("zero"), b"");
        assert!(matches!(bad, Some((1, Err(e))) if e.contains("index/count/generation")));
        assert!(a.take(Some(b"not a region"), Some("0/1/1"), b"").is_none());
    }
}

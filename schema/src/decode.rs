//! Decoding telemetry messages whatever their encoding, with typed errors that become
//! the dead-letter reason.

use crate::{
    arrow_codec, binary_codec, json_codec, TelemetryBatch, CONTENT_TYPE_ARROW, CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON,
};
use thiserror::Error;

/// The payload encodings a telemetry message may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// An Arrow IPC stream (`application/vnd.apache.arrow.stream`).
    Arrow,
    /// JSON lines (`application/json`).
    JsonLines,
    /// The compact framing of our own agents (`application/vnd.x0tta6bl4.telemetry.v1`).
    Binary,
}

impl ContentType {
    /// From the `content-type` header; a missing header means Arrow (the default).
    pub fn from_header(value: Option<&str>) -> Result<Self, DecodeError> {
        match value.map(|v| v.split(';').next().unwrap_or("").trim()) {
            None | Some(CONTENT_TYPE_ARROW) => Ok(ContentType::Arrow),
            Some(CONTENT_TYPE_JSON) | Some("application/x-ndjson") | Some("application/jsonl") => {
                Ok(ContentType::JsonLines)
            }
            Some(CONTENT_TYPE_BINARY) => Ok(ContentType::Binary),
            Some(other) => Err(DecodeError::UnknownContentType(other.to_string())),
        }
    }

    /// The `content-type` header value naming this encoding.
    pub fn header_value(self) -> &'static str {
        match self {
            ContentType::Arrow => CONTENT_TYPE_ARROW,
            ContentType::JsonLines => CONTENT_TYPE_JSON,
            ContentType::Binary => CONTENT_TYPE_BINARY,
        }
    }
}

/// Encodes a batch in `content_type`.
pub fn encode_telemetry(content_type: ContentType, batch: &TelemetryBatch) -> Vec<u8> {
    match content_type {
        ContentType::Arrow => arrow_codec::encode_arrow(batch),
        ContentType::JsonLines => json_codec::encode_json_lines(batch),
        ContentType::Binary => binary_codec::encode_binary(batch),
    }
}

/// Why a telemetry message was rejected. Always the sender's fault; retrying the same
/// bytes never helps.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DecodeError {
    /// The message had no samples.
    #[error("empty message")]
    Empty,
    /// The `content-type` header named an encoding we do not read.
    #[error("unknown content type {0:?}")]
    UnknownContentType(String),
    /// The bytes are not a valid Arrow IPC stream (truncated, garbage).
    #[error("invalid arrow ipc stream: {0}")]
    Arrow(String),
    /// The bytes are not valid compact framing (truncated, garbage, another version).
    #[error("invalid x0 framing: {0}")]
    Binary(String),
    /// A JSON line did not parse as a sample.
    #[error("invalid json on line {line}: {message}")]
    Json {
        /// The line (from 1).
        line: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// The payload was written for another layout version.
    #[error("schema version {found} is not supported (this build reads {supported})")]
    SchemaVersion {
        /// The version the message carries.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// A required column is absent.
    #[error("missing column {0}")]
    MissingColumn(&'static str),
    /// A column has the wrong Arrow type.
    #[error("column {0} has the wrong type")]
    WrongType(&'static str),
    /// A value is out of its domain (NaN, negative, out of range, null).
    #[error("bad value in {field}: {reason}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl DecodeError {
    /// A short stable label for counters (`reason` label of the DLQ metric).
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::UnknownContentType(_) => "content_type",
            DecodeError::Arrow(_) => "arrow",
            DecodeError::Binary(_) => "binary",
            DecodeError::Json { .. } => "json",
            DecodeError::SchemaVersion { .. } => "schema_version",
            DecodeError::MissingColumn(_) => "missing_column",
            DecodeError::WrongType(_) => "wrong_type",
            DecodeError::BadValue { .. } => "bad_value",
        }
    }
}

/// Decodes and validates one telemetry message.
pub fn decode_telemetry(content_type: ContentType, bytes: &[u8]) -> Result<TelemetryBatch, DecodeError> {
    let batch = match content_type {
        ContentType::Arrow => arrow_codec::decode_arrow(bytes)?,
        ContentType::JsonLines => json_codec::decode_json_lines(bytes)?,
        ContentType::Binary => binary_codec::decode_binary(bytes)?,
    };
    batch.validate()?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_arrow, encode_json_lines, LinkSample, NodeSample, Provenance, SCHEMA_VERSION};
    use proptest::prelude::*;

    fn link(ts: i64, node: &str, peer: &str, tx: u64) -> LinkSample {
        LinkSample {
            ts,
            node: node.into(),
            peer: peer.into(),
            iface: format!("veth-{peer}"),
            schema_version: SCHEMA_VERSION,
            provenance: Provenance::Sim,
            oper_up: true,
            tx_packets: tx,
            rx_packets: tx / 2,
            tx_bytes: tx * 100,
            rx_bytes: tx * 50,
            drops: 1,
            errors: 0,
            tcp_retransmits: 2,
            probes_sent: 10,
            probes_lost: 1,
            rtt_avg_us: 1200.5,
            rtt_max_us: 3000.0,
        }
    }

    fn node(ts: i64, id: &str) -> NodeSample {
        NodeSample {
            ts,
            node: id.into(),
            schema_version: SCHEMA_VERSION,
            provenance: Provenance::Sim,
            cpu: 0.25,
            mem: 0.5,
            softirq: 0.01,
            queue_pressure: 0.0,
            agent_ok: true,
        }
    }

    fn sample_batch() -> TelemetryBatch {
        TelemetryBatch { links: vec![link(1, "n0", "n1", 100), link(2, "n1", "n0", 7)], nodes: vec![node(1, "n0")] }
    }

    #[test]
    fn arrow_round_trip() {
        let b = sample_batch();
        assert_eq!(decode_telemetry(ContentType::Arrow, &encode_arrow(&b)).unwrap(), b);
    }

    #[test]
    fn json_round_trip() {
        let b = sample_batch();
        assert_eq!(decode_telemetry(ContentType::JsonLines, &encode_json_lines(&b)).unwrap(), b);
    }

    #[test]
    fn binary_round_trip_is_compact() {
        let b = sample_batch();
        let bytes = encode_telemetry(ContentType::Binary, &b);
        assert_eq!(decode_telemetry(ContentType::Binary, &bytes).unwrap(), b);
        assert!(bytes.len() * 4 < encode_json_lines(&b).len(), "{} bytes", bytes.len());
    }

    #[test]
    fn truncated_or_foreign_binary_is_rejected() {
        let bytes = encode_telemetry(ContentType::Binary, &sample_batch());
        for cut in 0..bytes.len() {
            let err = decode_telemetry(ContentType::Binary, &bytes[..cut]).unwrap_err();
            assert!(matches!(err, DecodeError::Binary(_)), "cut at {cut}: {err:?}");
        }
        let mut other = bytes.clone();
        other[3] = 2;
        assert!(decode_telemetry(ContentType::Binary, &other).unwrap_err().to_string().contains("framing version 2"));
        let mut longer = bytes;
        longer.push(0);
        assert!(decode_telemetry(ContentType::Binary, &longer).unwrap_err().to_string().contains("trailing"));
        assert_eq!(ContentType::from_header(Some(crate::CONTENT_TYPE_BINARY)).unwrap(), ContentType::Binary);
    }

    #[test]
    fn truncated_arrow_is_rejected() {
        let bytes = encode_arrow(&sample_batch());
        for cut in [1, 8, bytes.len() / 2, bytes.len() - 3] {
            let err = decode_telemetry(ContentType::Arrow, &bytes[..cut]).unwrap_err();
            assert!(matches!(err, DecodeError::Arrow(_)), "cut at {cut}: {err:?}");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let err = decode_telemetry(ContentType::Arrow, b"definitely not arrow at all, just text").unwrap_err();
        assert!(matches!(err, DecodeError::Arrow(_)), "{err:?}");
        let err = decode_telemetry(ContentType::JsonLines, b"{\"kind\":\"link\",\"ts\":").unwrap_err();
        assert!(matches!(err, DecodeError::Json { line: 1, .. }), "{err:?}");
    }

    /// Regression: the pull-based IPC reader allocated whatever a garbage length
    /// prefix claimed (up to 4 GiB per message), so random bytes were a denial of service.
    #[test]
    fn a_huge_length_prefix_does_not_allocate_it() {
        let mut bytes = vec![0xFF, 0xFF, 0xFF, 0xFF, 0xF0, 0xFF, 0xFF, 0x7F];
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        let started = std::time::Instant::now();
        assert!(matches!(decode_telemetry(ContentType::Arrow, &bytes), Err(DecodeError::Arrow(_))));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn wrong_schema_version_is_rejected() {
        let mut b = sample_batch();
        b.links[0].schema_version = 99;
        for ct in [ContentType::Arrow, ContentType::JsonLines, ContentType::Binary] {
            let bytes = encode_telemetry(ct, &b);
            let err = decode_telemetry(ct, &bytes).unwrap_err();
            assert_eq!(err, DecodeError::SchemaVersion { found: 99, supported: SCHEMA_VERSION });
        }
    }

    #[test]
    fn nan_and_out_of_range_values_are_rejected() {
        let mut b = sample_batch();
        b.links[0].rtt_avg_us = f64::NAN;
        assert!(matches!(
            decode_telemetry(ContentType::Arrow, &encode_arrow(&b)),
            Err(DecodeError::BadValue { field: "rtt_avg_us", .. })
        ));
        let mut b = sample_batch();
        b.nodes[0].cpu = -0.5;
        assert!(matches!(
            decode_telemetry(ContentType::Arrow, &encode_arrow(&b)),
            Err(DecodeError::BadValue { field: "cpu", .. })
        ));
    }

    #[test]
    fn negative_counters_in_json_are_rejected() {
        let line =
            String::from_utf8(encode_json_lines(&TelemetryBatch { links: vec![link(1, "a", "b", 5)], nodes: vec![] }))
                .unwrap();
        let bad = line.replace("\"tx_packets\":5", "\"tx_packets\":-5");
        assert_ne!(bad, line);
        assert!(matches!(decode_telemetry(ContentType::JsonLines, bad.as_bytes()), Err(DecodeError::Json { .. })));
    }

    #[test]
    fn unknown_content_type_is_rejected() {
        assert!(matches!(ContentType::from_header(Some("text/csv")), Err(DecodeError::UnknownContentType(_))));
        assert_eq!(ContentType::from_header(None).unwrap(), ContentType::Arrow);
    }

    proptest! {
        #[test]
        fn arrow_round_trips_any_counters(tx in 0u64..u64::MAX, ts in any::<i64>(), rtt in 0.0f64..1e9) {
            let mut b = sample_batch();
            b.links[0].tx_packets = tx;
            b.links[0].ts = ts;
            b.links[1].rtt_avg_us = rtt;
            prop_assert_eq!(decode_telemetry(ContentType::Arrow, &encode_arrow(&b)).unwrap(), b.clone());
            prop_assert_eq!(decode_telemetry(ContentType::Binary, &encode_telemetry(ContentType::Binary, &b)).unwrap(), b);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_telemetry(ContentType::Arrow, &bytes);
            let _ = decode_telemetry(ContentType::JsonLines, &bytes);
            let _ = decode_telemetry(ContentType::Binary, &bytes);
        }
    }
}

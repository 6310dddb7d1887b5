//! What authenticating telemetry costs the job, per sample, beside decoding it.
//!
//! Messages shaped as an agent sends them (one node's link samples to each neighbour
//! plus its node sample, per 100 ms tick), in both wire encodings; timed on one core:
//! verifying each message's MAC under its node's key (with the key already derived, as
//! the job keeps them), deriving a node key, and decoding the same messages (JSON
//! lines, Arrow IPC, and the compact framing); and, for
//! comparison, GMAC (AES-256-GCM) over the same messages.
//!
//! cargo bench -p x0-schema --bench mac -- [--messages 100000] [--neighbours 4]

use std::hint::black_box;
use std::time::Instant;
use x0_schema::{
    decode_telemetry, encode_telemetry, ContentType, FleetSecret, LinkSample, NodeSample, Provenance, TelemetryBatch,
    SCHEMA_VERSION,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn batch(i: usize, neighbours: usize) -> (String, TelemetryBatch) {
    let node = format!("n{i}");
    let ts = 1_700_000_000_000_000_000 + i as i64 * 1_000;
    let links = (0..neighbours)
        .map(|k| LinkSample {
            ts,
            node: node.clone(),
            peer: format!("n{}", i + k + 1),
            iface: format!("veth{k}"),
            schema_version: SCHEMA_VERSION,
            provenance: Provenance::Ebpf,
            oper_up: true,
            tx_packets: 1000 + i as u64,
            rx_packets: 990 + k as u64,
            tx_bytes: 150_000 + i as u64,
            rx_bytes: 148_000,
            drops: (i % 3) as u64,
            errors: 0,
            tcp_retransmits: (k % 2) as u64,
            probes_sent: 1,
            probes_lost: 0,
            rtt_avg_us: 850.0 + k as f64,
            rtt_max_us: 1200.0,
        })
        .collect();
    let nodes = vec![NodeSample {
        ts,
        node: node.clone(),
        schema_version: SCHEMA_VERSION,
        provenance: Provenance::Ebpf,
        cpu: 0.12,
        mem: 0.4,
        softirq: 0.01,
        queue_pressure: 0.0,
        agent_ok: true,
    }];
    (node, TelemetryBatch { links, nodes })
}

fn main() {
    let messages = arg("--messages", 100_000);
    let neighbours = arg("--neighbours", 4);
    let fleet = FleetSecret::generate();
    // 1,000 distinct nodes, their keys derived once (the job keeps them).
    let keys: Vec<_> = (0..1000).map(|i| fleet.node_key(&format!("n{i}"))).collect();
    let t = Instant::now();
    for i in 0..messages {
        black_box(fleet.node_key(black_box(&format!("n{i}"))));
    }
    let derive_ns = t.elapsed().as_nanos() as f64 / messages as f64;
    println!("node key derivation: {derive_ns:.0} ns (once per node; the job keeps the keys)");
    // BLAKE3's speed by input size: its SIMD parallelism is across 1 KiB chunks, so it
    // is several times faster on long inputs than on one node's tick.
    for size in [1_454usize, 5_584, 16 << 10, 64 << 10] {
        let input = vec![0x5au8; size];
        let rounds = (200_000_000 / size).max(10);
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(keys[0].mac(b"n0", black_box(&input)));
        }
        let gbs = (size * rounds) as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!("BLAKE3 keyed MAC of {size} B: {gbs:.2} GB/s");
    }
    for encoding in [ContentType::JsonLines, ContentType::Arrow, ContentType::Binary] {
        let msgs: Vec<(String, Vec<u8>, String, usize)> = (0..messages)
            .map(|i| {
                let (node, b) = batch(i % 1000, neighbours);
                let payload = encode_telemetry(encoding, &b);
                let mac = keys[i % 1000].mac(node.as_bytes(), &payload);
                (node, payload, mac, b.len())
            })
            .collect();
        let samples: usize = msgs.iter().map(|m| m.3).sum();
        let bytes: usize = msgs.iter().map(|m| m.1.len()).sum();
        let t = Instant::now();
        for (i, (node, payload, mac, _)) in msgs.iter().enumerate() {
            assert!(keys[i % 1000].verify(node.as_bytes(), black_box(payload), mac));
        }
        let verify = t.elapsed();
        // The alternative weighed: GMAC (AES-256-GCM sealing nothing, the payload as
        // associated data; ring, AES-NI and CLMUL), which also needs a fresh nonce per
        // message. Not faster on messages this small, so BLAKE3 stays.
        use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
        let gkeys: Vec<LessSafeKey> = keys
            .iter()
            .map(|k| LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k.to_bytes()).expect("a 32-byte key")))
            .collect();
        let tags: Vec<ring::aead::Tag> = msgs
            .iter()
            .enumerate()
            .map(|(i, (_, p, _, _))| {
                gkeys[i % 1000]
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key([7; 12]), Aad::from(p), &mut [])
                    .expect("sealing nothing")
            })
            .collect();
        let t = Instant::now();
        for (i, (_, payload, _, _)) in msgs.iter().enumerate() {
            let mut tag = [0u8; 16];
            tag.copy_from_slice(tags[i].as_ref());
            assert!(gkeys[i % 1000]
                .open_in_place(Nonce::assume_unique_for_key([7; 12]), Aad::from(black_box(payload)), &mut tag[..])
                .is_ok());
        }
        let g = t.elapsed();
        let gmac = (g.as_nanos() as f64 / samples as f64, bytes as f64 / g.as_secs_f64() / 1e9);
        let t = Instant::now();
        for (_, payload, _, _) in &msgs {
            black_box(decode_telemetry(encoding, payload).expect("valid"));
        }
        let decode = t.elapsed();
        let per = |d: std::time::Duration| d.as_nanos() as f64 / samples as f64;
        println!(
            "{encoding:?}: {messages} messages of {} samples, {:.0} B each ({:.0} B per sample) · \
             MAC verify {:.0} ns per sample ({:.2} GB/s) = {:.1}% of a core at 1 M samples/s · decode {:.0} ns per sample \
             · (GMAC instead: {:.0} ns per sample, {:.2} GB/s)",
            samples / messages,
            bytes as f64 / messages as f64,
            bytes as f64 / samples as f64,
            per(verify),
            bytes as f64 / verify.as_secs_f64() / 1e9,
            per(verify) * 1e6 / 1e9 * 100.0,
            per(decode),
            gmac.0,
            gmac.1,
        );
    }
}

//! Kafka over mTLS with SPIFFE X.509 SVIDs, for real: a real broker process (tansu)
//! behind a TLS proxy that demands client certificates chaining to the trust bundle
//! (stunnel, from Debian). The certificates are made here with the openssl CLI: a
//! trust domain `x0tta6bl4.local` with SVIDs for the job and for agent n1, and a
//! foreign trust domain `evil.example` with one of its own.
//!
//! - the stream job (its SVID from `[kafka.spiffe]`) consumes what agent n1 (its SVID)
//!   publishes, through the proxy;
//! - a client with no certificate, one from the wrong trust domain, and one speaking
//!   plaintext can neither produce nor consume, and the proxy's log says why;
//! - each process checks its own SVID's identity against its role;
//! - `x0tta6bl4 run`, its SVID re-issued under it, stops cleanly, exits 75, and
//!   restarted takes every sample exactly once.
//!
//! Without tansu, stunnel or openssl the test says so and passes, unless
//! `X0_REQUIRE_BROKER_TESTS=1` (CI), where that is a failure.
#![allow(clippy::unwrap_used)]

mod support;

use rdkafka::producer::FutureRecord;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use x0_kafka::{KafkaConfig, Role, Signer, SpiffeConfig, SpiffeError, TelemetryPublisher};
use x0_pipeline::{run_job, Config, FeatureEngine, HealingLoop, JobStats, Trust, BUILTIN_FEATURES_SQL};
use x0_schema::{ContentType, FleetSecret, NodeSample, Provenance, Shape, TelemetryBatch, Topology, TopologySpec};

const DOMAIN: &str = "x0tta6bl4.local";

/// Runs `openssl` with `args` (split at spaces; no argument here holds one) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl").args(args.split_whitespace()).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
}

const EC_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

/// A CA for `domain` in `dir` (ca.pem, ca_key.pem); its trust bundle is ca.pem.
fn trust_domain(dir: &Path, domain: &str) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &format!(
            "req -x509 {EC_KEY} -keyout ca_key.pem -out ca.pem -days 2 -subj /O={domain} \
             -addext subjectAltName=URI:spiffe://{domain} -addext basicConstraints=critical,CA:true \
             -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
}

/// A leaf certificate signed by the CA in `ca_dir`, written as spiffe-helper writes
/// an SVID: `out/svid.pem`, `out/svid_key.pem`, `out/svid_bundle.pem`.
fn issue(ca_dir: &Path, out: &Path, san: &str) {
    std::fs::create_dir_all(out).unwrap();
    let ext = out.join("ext.cnf");
    std::fs::write(
        &ext,
        format!(
            "subjectAltName={san}\nbasicConstraints=critical,CA:false\n\
             keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\n"
        ),
    )
    .unwrap();
    let (p, c) = (|f: &str| out.join(f).display().to_string(), |f: &str| ca_dir.join(f).display().to_string());
    openssl(out, &format!("req {EC_KEY} -keyout {} -out {} -subj /O=SPIFFE", p("svid_key.pem"), p("svid.csr")));
    openssl(
        out,
        &format!(
            "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -out {} -days 1 -extfile {}",
            p("svid.csr"),
            c("ca.pem"),
            c("ca_key.pem"),
            p("svid.pem"),
            p("ext.cnf")
        ),
    );
    std::fs::copy(ca_dir.join("ca.pem"), out.join("svid_bundle.pem")).unwrap();
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client of the proxied broker, with these SVID files (or none) and these extra options.
fn client(brokers: &str, spiffe: Option<&Path>, extra: &[(&str, &str)]) -> KafkaConfig {
    let mut k = KafkaConfig::for_brokers(brokers);
    if let Some(dir) = spiffe {
        k.spiffe = SpiffeConfig { dir: dir.to_string_lossy().into_owned(), ..SpiffeConfig::default() };
    }
    k.options.insert("message.timeout.ms".into(), "4000".into());
    k.options.insert("socket.timeout.ms".into(), "4000".into());
    for (key, v) in extra {
        k.options.insert(key.to_string(), v.to_string());
    }
    k
}

/// Whether `kafka` can get a message acknowledged on the telemetry topic.
async fn can_produce(kafka: &KafkaConfig) -> Result<(), String> {
    let producer = kafka.producer().map_err(|e| e.to_string())?;
    producer
        .send(FutureRecord::to(&kafka.topics.telemetry).key("probe").payload("x"), Duration::from_secs(5))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

/// Whether `kafka` can read the topic's metadata (what a consumer needs first).
fn can_consume(kafka: &KafkaConfig) -> Result<usize, String> {
    use rdkafka::consumer::Consumer;
    let consumer = kafka.unmanaged_consumer("x0-mtls-probe").map_err(|e| e.to_string())?;
    consumer
        .fetch_metadata(Some(&kafka.topics.telemetry), Duration::from_secs(4))
        .map(|m| m.topics().first().map_or(0, |t| t.partitions().len()))
        .map_err(|e| e.to_string())
}

fn node_sample(ts: i64, node: &str) -> NodeSample {
    NodeSample {
        ts,
        node: node.into(),
        schema_version: x0_schema::SCHEMA_VERSION,
        provenance: Provenance::External,
        cpu: 0.2,
        mem: 0.3,
        softirq: 0.0,
        queue_pressure: 0.0,
        agent_ok: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_with_an_svid_of_the_trust_domain_reach_the_broker() {
    let required = std::env::var("X0_REQUIRE_BROKER_TESTS").as_deref() == Ok("1");
    let missing: Vec<&str> = [("openssl", have("openssl")), ("stunnel", have("stunnel"))]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| t)
        .chain(support::tansu().is_none().then_some("tansu"))
        .collect();
    if !missing.is_empty() {
        assert!(!required, "X0_REQUIRE_BROKER_TESTS=1 but {missing:?} missing (apt-get install stunnel4 openssl)");
        eprintln!("SKIPPED: {missing:?} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    trust_domain(&d("ca"), DOMAIN);
    trust_domain(&d("evil-ca"), "evil.example");
    issue(&d("ca"), &d("job"), &format!("URI:spiffe://{DOMAIN}/job"));
    issue(&d("ca"), &d("n1"), &format!("URI:spiffe://{DOMAIN}/agent/n1"));
    issue(&d("ca"), &d("proxy"), &format!("URI:spiffe://{DOMAIN}/kafka,IP:127.0.0.1,DNS:localhost"));
    issue(&d("evil-ca"), &d("evil"), "URI:spiffe://evil.example/job");
    // The foreign client trusts our broker's CA (it is public), but its SVID is not ours.
    std::fs::copy(d("ca/ca.pem"), d("evil/svid_bundle.pem")).unwrap();

    // stunnel in front of tansu: the broker advertises the proxy's address, so every
    // connection a client makes goes through it.
    let (plain, tls) = (support::free_port(), support::free_port());
    let log = d("stunnel.log");
    let conf = d("stunnel.conf");
    let s = |p: &str| d(p).to_string_lossy().into_owned();
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\ndebug = 5\noutput = {}\n[kafka]\naccept = 127.0.0.1:{tls}\nconnect = 127.0.0.1:{plain}\n\
             cert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            log.display(),
            s("proxy/svid.pem"),
            s("proxy/svid_key.pem"),
            s("ca/ca.pem"),
        ),
    )
    .unwrap();
    let _proxy =
        Killed(Command::new("stunnel").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let _broker = Killed(
        Command::new(support::tansu().unwrap())
            .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{plain}")])
            .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{tls}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let brokers = format!("127.0.0.1:{tls}");
    let job_kafka = client(&brokers, Some(&d("job")), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match job_kafka.create_topics(&job_kafka.topics.all(), 2).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("broker behind the proxy not ready yet ({e})");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("creating topics through the proxy: {e}"),
        }
    }

    // Identities come from the SAN and are checked against the role.
    assert_eq!(job_kafka.spiffe.check_identity(Role::Job).unwrap().as_deref(), Some("spiffe://x0tta6bl4.local/job"));
    let n1_kafka = client(&brokers, Some(&d("n1")), &[]);
    assert_eq!(
        n1_kafka.spiffe.check_identity(Role::Agent { node: "n1" }).unwrap().as_deref(),
        Some("spiffe://x0tta6bl4.local/agent/n1")
    );
    let e = n1_kafka.spiffe.check_identity(Role::Agent { node: "n2" }).unwrap_err();
    assert!(matches!(e, SpiffeError::WrongIdentity { .. }), "{e}");
    assert!(n1_kafka.spiffe.check_identity(Role::Job).is_err(), "an agent's SVID cannot run the job");
    let evil_kafka = client(&brokers, Some(&d("evil")), &[]);
    assert!(evil_kafka.spiffe.check_identity(Role::Job).is_err(), "another trust domain's job id");

    // The stream job, with its SVID, takes what agent n1 publishes with its own.
    let topo = Topology::generate(&TopologySpec {
        shape: Shape::Ring,
        nodes: 4,
        seed: 1,
        links: vec![],
        regions: Default::default(),
    })
    .unwrap();
    let stats = Arc::new(JobStats::default());
    let features = FeatureEngine::new(BUILTIN_FEATURES_SQL).await.unwrap();
    let fleet = FleetSecret::generate();
    let core =
        HealingLoop::new(Config::default(), topo, features, x0_schema::generate_signing_key(), stats.clone(), "t")
            .with_trust(Trust::new(fleet.clone()));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let history = d("history");
    let job = {
        let kafka = job_kafka.clone();
        tokio::spawn(async move { run_job(core, &kafka, &history, "mtls", None, stop_rx).await })
    };
    let agent =
        TelemetryPublisher::new(&n1_kafka, ContentType::Arrow).unwrap().signed(Signer::Node(fleet.node_key("n1")));
    let t0 = x0_schema::wall_clock_ns();
    for i in 0..4 {
        let batch = TelemetryBatch { links: vec![], nodes: vec![node_sample(t0 + i * 1_000_000_000, "n1")] };
        agent.publish("n1", &batch).await.expect("agent n1 publishes through the proxy");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while JobStats::get(&stats.samples) < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(JobStats::get(&stats.samples), 4, "the job consumed n1's telemetry over mTLS: {:?}", stats.dlq());
    stop.send(true).unwrap();
    job.await.unwrap().unwrap();

    // Refused at the proxy: no certificate, a foreign trust domain's, plaintext.
    let ca = s("ca/ca.pem");
    let refused = [
        ("no certificate", client(&brokers, None, &[("security.protocol", "ssl"), ("ssl.ca.location", &ca)])),
        ("wrong trust domain", evil_kafka),
        ("plaintext", client(&brokers, None, &[])),
    ];
    for (what, kafka) in &refused {
        let produced = can_produce(kafka).await;
        assert!(produced.is_err(), "{what}: produced through the proxy");
        let consumed = can_consume(kafka);
        assert!(consumed.is_err(), "{what}: read metadata through the proxy: {consumed:?}");
        println!("{what}: refused (produce: {}; consume: {})", produced.unwrap_err(), consumed.unwrap_err());
    }
    // And the proxy says why. (A client whose SVID is of another trust domain does not
    // even offer it: the proxy asks for a certificate from the bundle's CA, and the
    // client has none, so the proxy logs the same as for no certificate.)
    let said = std::fs::read_to_string(&log).unwrap();
    for reason in ["Certificate accepted", "peer did not return a certificate", "wrong version number"] {
        assert!(said.contains(reason), "stunnel's log lacks {reason:?}:\n{said}");
    }
    // The valid SVIDs still work after all that.
    assert_eq!(can_consume(&job_kafka).unwrap(), 2);
    can_produce(&n1_kafka).await.unwrap();

    svid_rotation_restarts_the_job_without_loss(dir.path(), &brokers, &n1_kafka, 4).await;
}

/// `x0tta6bl4 run` on the job's SVID; the SVID is re-issued under it: the job stops
/// cleanly, exits 75 for its supervisor, and, started again, resumes from its
/// checkpoint: every sample published before, during and after is taken exactly once.
/// `already`: valid samples on the topic from before (a new consumer group reads them too).
async fn svid_rotation_restarts_the_job_without_loss(root: &Path, brokers: &str, agent: &KafkaConfig, already: i64) {
    let d = |p: &str| root.join("rotation").join(p);
    std::fs::create_dir_all(d("svid")).unwrap();
    for f in ["svid.pem", "svid_key.pem", "svid_bundle.pem"] {
        std::fs::copy(root.join("job").join(f), d("svid").join(f)).unwrap();
    }
    x0_schema::generate_key_files(&d("")).unwrap();
    std::fs::write(d("mesh.toml"), "name = \"ring\"\nduration = \"1h\"\n[topology]\nshape = \"ring\"\nnodes = 4\n")
        .unwrap();
    std::fs::write(
        d("x0.toml"),
        format!(
            "data_dir = \"{}\"\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"x0-rotation\"\n[kafka.spiffe]\ndir = \"{}\"\n\
             [keys]\nsigning_key = \"{}\"\nverifying_key = \"{}\"\n",
            d("history").display(),
            d("svid").display(),
            d("signing.key").display(),
            d("verifying.key").display()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", support::free_port());
    let job = |n: u32| {
        Command::new(env!("CARGO_BIN_EXE_x0tta6bl4"))
            .arg("--config")
            .arg(d("x0.toml"))
            .args(["run", "--listen", &listen, "--topology"])
            .arg(d("mesh.toml"))
            .arg("--stats-json")
            .arg(d(&format!("job{n}.json")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d(&format!("job{n}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    let publisher = TelemetryPublisher::new(agent, ContentType::Arrow).unwrap();
    let t0 = x0_schema::wall_clock_ns();
    let mut sent = 0i64;
    // The next `count` samples of n1, 50 ms apart.
    let publish = |from: i64, count: i64| {
        (from..from + count)
            .map(move |i| TelemetryBatch { links: vec![], nodes: vec![node_sample(t0 + i * 50_000_000, "n1")] })
    };
    let mut first = job(1);
    for b in publish(sent, 20) {
        publisher.publish("n1", &b).await.unwrap();
    }
    sent += 20;
    // Rotate once the job has taken all of it (its own /metrics says so).
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let taken = || {
        let (_, text) = x0_ops::http_get(addr, "/metrics").ok()?;
        let line = text.lines().find(|l| l.starts_with("x0_job_samples_total "))?;
        line.rsplit(' ').next()?.parse::<f64>().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while taken().is_none_or(|n| n < (already + sent) as f64) {
        assert!(Instant::now() < deadline, "the job did not take the telemetry: {:?}", taken());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The helper writes a fresh SVID (new key, new certificate) over the old files.
    issue(&root.join("ca"), &d("svid"), &format!("URI:spiffe://{DOMAIN}/job"));
    let rotated_at = Instant::now();
    let status = loop {
        if let Some(s) = first.try_wait().unwrap() {
            break s;
        }
        assert!(rotated_at.elapsed() < Duration::from_secs(30), "the job did not stop on the rotated SVID");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(d("job1.log")).unwrap();
    assert_eq!(status.code(), Some(x0_kafka::EXIT_SVID_ROTATED), "{log}");
    assert!(log.contains("SVID"), "{log}");
    let stopped_after = rotated_at.elapsed();
    // Published while it is down, then after it is back.
    for b in publish(sent, 20) {
        publisher.publish("n1", &b).await.unwrap();
    }
    sent += 20;
    let mut second = job(2);
    for b in publish(sent, 20) {
        publisher.publish("n1", &b).await.unwrap();
    }
    sent += 20;
    tokio::time::sleep(Duration::from_secs(8)).await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(second.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = second.wait().unwrap();
    let log2 = std::fs::read_to_string(d("job2.log")).unwrap();
    assert!(status.success(), "{log2}");
    assert!(log2.contains("resumed from"), "the restarted job took up its checkpoint: {log2}");
    let samples = |n: u32| {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d(&format!("job{n}.json"))).unwrap()).unwrap();
        v["samples"].as_i64().unwrap()
    };
    let (a, b) = (samples(1), samples(2));
    println!(
        "SVID rotated: job stopped {:.1} s later with status 75; before {a} samples, after the restart {b}; {} on the topic",
        stopped_after.as_secs_f64(),
        already + sent
    );
    assert_eq!(a + b, already + sent, "each sample taken exactly once across the restart ({a} + {b})");
    assert_eq!(a, already + 20, "the first run took everything sent before the rotation");
}

#[test]
fn an_svid_without_one_spiffe_uri_is_refused() {
    if !have("openssl") {
        assert!(std::env::var("X0_REQUIRE_BROKER_TESTS").as_deref() != Ok("1"), "openssl missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca: PathBuf = dir.path().join("ca");
    trust_domain(&ca, DOMAIN);
    for (name, san, why) in [
        ("dns", "DNS:n1.example", "no URI SAN"),
        ("https", "URI:https://x0tta6bl4.local/job", "not a SPIFFE ID"),
        ("two", "URI:spiffe://x0tta6bl4.local/job,URI:spiffe://x0tta6bl4.local/agent/n1", "2 URI SANs"),
    ] {
        let out = dir.path().join(name);
        issue(&ca, &out, san);
        let e = x0_kafka::svid_id(&std::fs::read(out.join("svid.pem")).unwrap()).unwrap_err();
        assert!(e.contains(why), "{name}: {e}");
    }
    let e = x0_kafka::svid_id(b"not a certificate").unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
}

//! The web dashboard in a real browser: headless Chromium (Debian's `chromium`),
//! driven over the DevTools protocol, against a running `x0tta6bl4 demo --ui`.
//!
//! A link of a 16-node grid loses carrier for 10 s. The page must show every node,
//! the link turning bad, the incident with the right root cause and its applied
//! commands, the link healthy again after the repair, and the incident in the history
//! (the saved SQL). Then the job is replaced by another on the same address: the page
//! must reconnect and show the new mesh. Page load is timed. Screenshots are saved
//! under `$X0_ARTIFACTS_DIR/dashboard` (default: the target dir's `tmp/`).
//!
//! Without Chromium it says SKIPPED, except with `X0_REQUIRE_BROWSER_TESTS=1` (CI).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

fn chromium() -> Option<PathBuf> {
    let candidates = [std::env::var("X0_CHROMIUM").unwrap_or_default(), "chromium".into(), "chromium-browser".into()];
    candidates.into_iter().filter(|c| !c.is_empty()).find_map(|c| {
        let ok = Command::new(&c).arg("--version").output().is_ok_and(|o| o.status.success());
        ok.then(|| PathBuf::from(c))
    })
}

/// Chromium, or None after saying SKIPPED (a failure with `X0_REQUIRE_BROWSER_TESTS=1`).
fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("X0_REQUIRE_BROWSER_TESTS").as_deref() != Ok("1"),
            "X0_REQUIRE_BROWSER_TESTS=1 but no chromium (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium)");
    }
    found
}

fn artifacts() -> PathBuf {
    let base =
        std::env::var("X0_ARTIFACTS_DIR").map_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    let dir = base.join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process killed when dropped, with its stderr lines on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The first stderr line containing `marker`, within `timeout`.
    fn line_with(&self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {marker:?} within {timeout:?}: {e}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page of a headless Chromium, over the DevTools protocol (one WebSocket to the
/// browser, the page attached as a flat session).
struct Page {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next: u64,
    _browser: Proc,
    _profile: tempfile::TempDir,
}

impl Page {
    fn open(chromium: &Path) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let browser = Proc::spawn(Command::new(chromium).args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--window-size=1280,1100",
            &format!("--user-data-dir={}", profile.path().display()),
            "about:blank",
        ]));
        let line = browser.line_with("DevTools listening on ", Duration::from_secs(30));
        let url = line.split("DevTools listening on ").nth(1).unwrap().trim().to_string();
        let (ws, _) = tungstenite::connect(url.as_str()).unwrap();
        let mut page = Page { ws, session: String::new(), next: 0, _browser: browser, _profile: profile };
        let target = page.call("Target.createTarget", json!({"url": "about:blank"}))["targetId"].clone();
        let session = page.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        page.session = session["sessionId"].as_str().unwrap().to_string();
        page.call("Page.enable", json!({}));
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 1100, "deviceScaleFactor": 1, "mobile": false}),
        );
        page
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}));
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Polls `expr` until it is truthy; returns its value.
    fn wait_for(&mut self, what: &str, expr: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expr);
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: not seen within {timeout:?} ({expr})");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Opens `url`'s mesh view and waits until `drawn` holds and the page has drawn the
    /// mesh; returns when it drew it and when its load event ended (ms after
    /// navigation start).
    fn open_mesh(&mut self, url: &str, what: &str, drawn: &str, timeout: Duration) -> (Value, Value) {
        self.navigate(&format!("{url}#/mesh"));
        let at = self.wait_for(what, &format!("{drawn} && window.x0MeshDrawnAt"), timeout);
        (at, self.eval("performance.getEntriesByType('navigation')[0].loadEventEnd"))
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        let path = artifacts().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

const FAULT_SCENARIO: &str = r#"
name = "ui-link-down"
duration = "45s"
telemetry_interval = "100ms"
[topology]
shape = "grid"
nodes = 16
seed = 7
[traffic]
pairs = 24
rate_pps = 50
[[fault]]
at = "8s"
kind = "link-down"
target = "n5-n6"
duration = "10s"
"#;

const QUIET_SCENARIO: &str = r#"
name = "ui-restarted"
duration = "8s"
telemetry_interval = "100ms"
[topology]
shape = "grid"
nodes = 9
seed = 3
[traffic]
pairs = 6
rate_pps = 20
"#;

fn demo(dir: &Path, name: &str, scenario: &str, addr: &str) -> Proc {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, scenario).unwrap();
    let data = dir.join(format!("{name}-data"));
    Proc::spawn(Command::new(env!("CARGO_BIN_EXE_x0tta6bl4")).args([
        "demo",
        "--scenario",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--ui",
        addr,
        "--keep-ui",
    ]))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const LINK_LOOK: &str = r#"(document.querySelector('#mesh [data-link="n5-n6"]') || {dataset: {}}).dataset.look"#;

#[test]
fn the_dashboard_shows_the_mesh_heal_in_a_real_browser() {
    let Some(chromium) = chromium_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let job = demo(dir.path(), "fault", FAULT_SCENARIO, &addr);
    let line = job.line_with("dashboard: ", Duration::from_secs(120));
    let url = line.split("dashboard: ").nth(1).unwrap().trim().to_string();
    let mut page = Page::open(&chromium);

    // The mesh: every node of the scenario, drawn within a second of navigating.
    let (nodes, load) = page.open_mesh(
        &url,
        "16 nodes on the map",
        "document.querySelectorAll('#mesh [data-node]').length === 16",
        Duration::from_secs(20),
    );
    eprintln!("page load event at {load} ms, mesh drawn at {nodes} ms after navigation start");
    assert!(nodes.as_f64().unwrap() < 1000.0, "mesh drawn {nodes} ms after navigation start");
    assert!(load.as_f64().unwrap() < 1000.0, "page loaded in {load} ms");
    page.wait_for(
        "a first window",
        "document.getElementById('window-info').textContent.startsWith('last window')",
        Duration::from_secs(20),
    );
    assert_eq!(page.eval(LINK_LOOK), json!("healthy"));
    page.screenshot("1-mesh-healthy");
    // Before any incident the history explains itself rather than showing nothing.
    page.navigate(&format!("{url}#/history"));
    page.wait_for("the empty history explained", "document.getElementById('history-empty')", Duration::from_secs(10));
    page.navigate(&format!("{url}#/mesh"));

    // The fault: the link turns bad on the map, and is named in words below it.
    let look = page.wait_for(
        "link n5-n6 marked bad",
        &format!("['anomalous','incident','rerouted'].includes({LINK_LOOK}) && {LINK_LOOK}"),
        Duration::from_secs(40),
    );
    eprintln!("link n5-n6 first seen {look}");
    page.wait_for("link n5-n6 rerouted around", &format!("{LINK_LOOK} === 'rerouted'"), Duration::from_secs(30));
    assert!(page.eval("document.getElementById('hot').textContent").as_str().unwrap().contains("link n5-n6"));
    page.screenshot("2-mesh-rerouted");

    // The incident: right root cause, its commands applied.
    page.navigate(&format!("{url}#/incidents"));
    let id = page.wait_for(
        "the incident listed",
        "(() => { const r = document.querySelector('tr[data-element=\"link n5-n6\"][data-kind=\"link-down\"]'); return r && r.dataset.incident; })()",
        Duration::from_secs(20),
    );
    page.screenshot("3-incidents");
    page.navigate(&format!("{url}#/incident/{}", id.as_str().unwrap()));
    page.wait_for("its cause on its page", "document.getElementById('incident-cause') && document.getElementById('incident-cause').dataset.kind === 'link-down'", Duration::from_secs(10));
    let applied = page.wait_for(
        "applied commands",
        "document.querySelectorAll('#incident-commands tr[data-status=\"applied\"]').length",
        Duration::from_secs(20),
    );
    assert!(applied.as_u64().unwrap() >= 1);
    assert!(page.eval("document.querySelectorAll('#incident-hypotheses tbody tr').length").as_u64().unwrap() >= 1);
    assert!(page.eval("document.querySelectorAll('.incident-map .route-after').length").as_u64().unwrap() >= 1);
    page.screenshot("4-incident");

    // The repair holds, the fault clears: the link is healthy again.
    page.navigate(&format!("{url}#/mesh"));
    page.wait_for("link n5-n6 healthy again", &format!("{LINK_LOOK} === 'healthy'"), Duration::from_secs(60));
    page.screenshot("5-mesh-healed");

    // The history (saved SQL over the Parquet files) has the incident.
    page.navigate(&format!("{url}#/history"));
    page.wait_for(
        "the incident in the history",
        &format!("document.querySelector('#history-incidents') && document.querySelector('#history-incidents').textContent.includes({id})"),
        Duration::from_secs(30),
    );
    assert!(page
        .eval("document.querySelector('#history-by-kind').textContent.includes('link-down')")
        .as_bool()
        .unwrap());
    page.screenshot("6-history");

    page.navigate(&format!("{url}#/model"));
    page.wait_for(
        "the model's report card",
        "document.querySelectorAll('#model-card tbody tr').length",
        Duration::from_secs(10),
    );
    page.screenshot("7-model");

    // The job is replaced on the same address (a restart): the page reconnects by
    // itself and shows the new job's mesh.
    page.navigate(&format!("{url}#/mesh"));
    page.wait_for("live", "document.getElementById('conn').textContent === 'live'", Duration::from_secs(10));
    drop(job);
    page.wait_for(
        "the loss noticed",
        "document.getElementById('conn').classList.contains('down')",
        Duration::from_secs(20),
    );
    let next = demo(dir.path(), "quiet", QUIET_SCENARIO, &addr);
    next.line_with("dashboard: ", Duration::from_secs(120));
    page.wait_for("the new mesh after reconnecting", "document.querySelectorAll('#mesh [data-node]').length === 9 && document.getElementById('conn').textContent === 'live'", Duration::from_secs(30));
    page.screenshot("8-reconnected");
}

/// A mesh of 10,000 nodes is drawn by region, and the page still loads within a second.
#[test]
fn a_ten_thousand_node_mesh_is_drawn_by_region_within_a_second() {
    let Some(chromium) = chromium_or_skip() else { return };
    let scenario = x0_schema::Scenario::from_toml_str(
        "name='big'\nduration='1s'\n[topology]\nshape='grid'\nnodes=10000\nseed=1\n[traffic]\npairs=0\nrate_pps=0\n",
    )
    .unwrap();
    let topo = x0_schema::Topology::generate(&scenario.topology).unwrap();
    let stats = std::sync::Arc::new(x0_pipeline::JobStats::default());
    let live = x0_pipeline::LiveView::new(&topo);
    let history = tempfile::tempdir().unwrap();
    let built = Instant::now();
    let dashboard = x0_ui::Dashboard::new(&topo, live, stats.clone(), history.path().to_path_buf(), "builtin");
    eprintln!("layout of {} nodes: {:.0} ms", topo.len(), built.elapsed().as_secs_f64() * 1e3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let ready: x0_ops::ReadyCheck = std::sync::Arc::new(|| Ok(()));
    let endpoint = rt
        .block_on(x0_ops::Endpoint::serve_with(
            "127.0.0.1:0",
            x0_pipeline::job_registry(stats),
            ready,
            dashboard.router(),
        ))
        .unwrap();
    let url = format!("http://{}/", endpoint.addr());
    let mut page = Page::open(&chromium);
    let (drawn, load) = page.open_mesh(
        &url,
        "the regions on the map",
        "document.querySelectorAll('#mesh [data-region]').length > 0",
        Duration::from_secs(30),
    );
    let regions = page.eval("document.querySelectorAll('#mesh [data-region]').length");
    let bytes = page.eval("fetch('/api/mesh').then((r) => r.text()).then((t) => t.length)");
    eprintln!("10,000 nodes in {regions} regions: /api/mesh {bytes} bytes, page load event at {load} ms, mesh drawn at {drawn} ms");
    assert_eq!(regions, json!(67));
    assert!(page.eval("document.getElementById('mesh-title').textContent").as_str().unwrap().contains("10000 nodes"));
    assert!(drawn.as_f64().unwrap() < 1000.0, "mesh drawn {drawn} ms after navigation start");
    page.screenshot("9-mesh-10k-regions");
}

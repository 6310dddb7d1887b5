//! One stream job, set up the same way wherever it runs: `x0tta6bl4 run` against a
//! cluster, the demo and the kernel lab against an embedded broker, the tests.

use crate::checkpoint::{inventory_digest, CheckpointError, CheckpointStore};
use crate::config::Config;
use crate::features::FeatureEngine;
use crate::healing_loop::HealingLoop;
use crate::job::{run_job, Durability, JobError, JobReport};
use crate::live::LiveView;
use crate::recall::open_knowledge;
use crate::stats::JobStats;
use crate::trust::Trust;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use x0_kafka::KafkaConfig;
use x0_schema::{SigningKey, Topology};

/// A stream job's identity and parts, before it runs.
///
/// ```no_run
/// # async fn run(config: x0_pipeline::Config, mesh: x0_schema::Topology) -> Result<(), x0_pipeline::JobError> {
/// let job = x0_pipeline::StreamJob::new(config.clone(), mesh, x0_schema::generate_signing_key());
/// let (_stop, shutdown) = tokio::sync::watch::channel(false);
/// let report = job.run(&config.kafka, shutdown).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamJob {
    config: Config,
    topology: Topology,
    signer: SigningKey,
    stats: Arc<JobStats>,
    job_id: String,
    data_dir: PathBuf,
    checkpoint: Option<(CheckpointStore, std::time::Duration)>,
    live: Option<Arc<LiveView>>,
}

impl StreamJob {
    /// A job over `topology` (the inventory) that signs with `signer`, writing its
    /// history to the configured `data_dir`, under a fresh job id.
    pub fn new(config: Config, topology: Topology, signer: SigningKey) -> Self {
        let data_dir = config.data_dir();
        StreamJob {
            config,
            topology,
            signer,
            stats: Arc::new(JobStats::default()),
            job_id: uuid::Uuid::new_v4().simple().to_string(),
            data_dir,
            checkpoint: None,
            live: None,
        }
    }

    /// Keeps a checkpoint in `dir`, written at most every `interval` at a window
    /// boundary: the job survives a crash or a restart. A checkpoint already there is
    /// taken up: the job keeps its id (history files, incident ids, results group).
    pub fn checkpoint(
        mut self,
        dir: impl Into<PathBuf>,
        interval: std::time::Duration,
    ) -> Result<Self, CheckpointError> {
        let store = CheckpointStore::new(dir);
        if let Some(meta) = store.meta()? {
            self.job_id = meta.job_id;
        }
        self.checkpoint = Some((store, interval));
        Ok(self)
    }

    /// Writes the history (and the embedded knowledge base) under `dir` instead.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Feeds `live` (the web UI) as it runs; see [`LiveView`].
    pub fn live(mut self, live: Arc<LiveView>) -> Self {
        self.live = Some(live);
        self
    }

    /// The inventory it runs over.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The job's counters, shared with whoever watches it.
    pub fn stats(&self) -> Arc<JobStats> {
        self.stats.clone()
    }

    /// The job's id (history file names, its results consumer group).
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The healing loop this job drives: the configured feature SQL and keys
    /// (`keys.fleet_secret`: telemetry and results must be authenticated), and the knowledge
    /// base attached when it opens (without it, and a warning, when it does not:
    /// recall makes repairs faster, it is never required).
    pub async fn healing_loop(&self) -> Result<HealingLoop, JobError> {
        let sql = self
            .config
            .feature_sql()
            .map_err(|e| JobError::FeatureSql { file: self.config.features.sql_file.clone(), reason: e.to_string() })?;
        let features = FeatureEngine::new(&sql)
            .await
            .map_err(|e| JobError::FeatureSql { file: self.config.features.sql_file.clone(), reason: e.to_string() })?;
        let mut core = HealingLoop::new(
            self.config.clone(),
            self.topology.clone(),
            features,
            self.signer.clone(),
            self.stats.clone(),
            &format!("inc-{}", &self.job_id[..8]),
        );
        if let Some(live) = &self.live {
            core = core.with_live(live.clone());
        }
        if let Some(trust) =
            Trust::from_files(&self.config.keys.fleet_secret, &self.config.keys.producers).map_err(JobError::Keys)?
        {
            core = core.with_trust(trust);
        }
        Ok(match open_knowledge(&self.config, &self.data_dir) {
            Ok(Some(kb)) => core.with_knowledge(kb),
            Ok(None) => core,
            Err(e) => {
                tracing::warn!(error = %e, "knowledge base unavailable; running without recall of past incidents");
                eprintln!("warning: knowledge base unavailable ({e}); running without recall of past incidents");
                core
            }
        })
    }

    /// Runs on `kafka` until `shutdown` turns true; then writes the final history.
    /// With a checkpoint, the state is restored first and input it covers is skipped.
    pub async fn run(self, kafka: &KafkaConfig, shutdown: watch::Receiver<bool>) -> Result<JobReport, JobError> {
        let mut core = self.healing_loop().await?;
        let durable = match &self.checkpoint {
            None => None,
            Some((store, interval)) => {
                let meta = store.restore(&mut core, &self.topology)?;
                if let Some(live) = &self.live {
                    core.publish_held(live);
                }
                if let Some(m) = &meta {
                    let open = core.incidents().iter().filter(|i| !i.state.is_final()).count();
                    eprintln!(
                        "stream job {}: resumed from {} ({open} open incidents, {} partitions' offsets)",
                        self.job_id,
                        store.path().display(),
                        m.offsets.values().map(|p| p.len()).sum::<usize>()
                    );
                }
                Some(Durability {
                    store: store.clone(),
                    interval: *interval,
                    inventory: inventory_digest(&self.topology),
                    resume: meta.map(|m| m.offsets).unwrap_or_default(),
                })
            }
        };
        run_job(core, kafka, &self.data_dir, &self.job_id, durable, shutdown).await
    }
}

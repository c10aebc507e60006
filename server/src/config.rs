//! Server configuration: a JSON file (optional) overridden by command-line flags.
//!
//! Layer: top (read by [`crate::server`] and the binaries).
//!
//! Every field has a default except `node_id`, `listen` and `data_dir`. Raft timing defaults
//! are larger than openraft's because one node runs a Raft per hosted partition, each with its
//! own heartbeats, and openraft bounds every AppendEntries by the heartbeat interval (mapping
//! §12.10).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest `background_jobs`.
pub const MAX_BACKGROUND_JOBS: usize = 256;

/// Parses a byte size: a number with an optional unit, `K`/`KiB`, `M`/`MiB`, `G`/`GiB`,
/// `T`/`TiB` (powers of 1024, any case; `B` alone or no unit = bytes), e.g. `256MiB`, `1g`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 4096, 64KiB, 256MiB or 1GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (K, M, G, T, with or without iB)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// Parses a duration in milliseconds: a number with an optional unit `ms`, `s`, `m` or `h`
/// (a bare number is milliseconds, like every `*_ms` setting), e.g. `500ms`, `30s`, `2m`.
pub fn parse_duration_ms(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 500ms, 30s or 2m"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1,
        "s" | "sec" | "secs" => 1000,
        "m" | "min" | "mins" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// The configuration of one silt-server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Stable node id, at least 1.
    pub node_id: u64,
    /// Address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Address peers and clients use; default: the bound listen address.
    pub advertise: Option<String>,
    /// Root directory of the node's data.
    pub data_dir: PathBuf,
    /// Where to write the bound address once listening (for scripts and tests).
    pub addr_file: Option<PathBuf>,
    /// Raft heartbeat interval (and AppendEntries timeout). Default 250 ms.
    pub heartbeat_ms: u64,
    /// Smallest election timeout. Default 1500 ms.
    pub election_min_ms: u64,
    /// Largest election timeout. Default 3000 ms.
    pub election_max_ms: u64,
    /// Bound on a client read or write inside the server. Default 5000 ms.
    pub request_timeout_ms: u64,
    /// Period of every replica's checkpoint task ([`siltdb_replica::maintenance`]); 0 = off.
    /// Default 60000 ms.
    pub checkpoint_interval_ms: u64,
    /// Entries applied since a replica's last checkpoint before its task checkpoints again.
    /// Default 10000.
    pub checkpoint_decrees_min: u64,
    /// Engine memtable size per replica. Default 8 MiB.
    pub memtable_size_bytes: usize,
    /// Log level: error, warn, info, debug, trace. Default info.
    pub log_level: String,
    /// Accept the fault-injection requests (`Partition`, `Heal`). Default false: tests only.
    pub allow_fault_injection: bool,
    /// The node's one block cache, shared by every replica. Default 256 MiB.
    pub block_cache_size_bytes: u64,
    /// Budget for memtable bytes across every replica of the node. Default 512 MiB.
    pub write_buffer_size_bytes: u64,
    /// Background compaction threads shared by every replica (one more thread only
    /// flushes). Default 4.
    pub background_jobs: usize,
    /// How long the meta service's leader lets a registered node stay unreachable before it
    /// moves that node's replicas onto live nodes; 0 = never. Default 60000 ms.
    pub node_failure_grace_ms: u64,
    /// Serve Prometheus metrics (`GET /metrics`) and `GET /healthz` on this address.
    /// Default: off.
    pub metrics_listen: Option<String>,
    /// The token file ([`crate::auth::keyring`]); `None`: no authentication (a warning at
    /// start).
    pub auth_token_file: Option<PathBuf>,
    /// Bulk-load sources must lie under this directory (after resolving symlinks); `None`:
    /// any absolute path without `..` ([`crate::confine`]).
    pub bulk_load_root: Option<PathBuf>,
    /// PEM certificate chain this server presents: with `tls_key`, every connection to it is
    /// TLS ([`siltdb_client::tls`]).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM certificates the node's outgoing TLS connections trust; default: `tls_cert`.
    pub tls_ca: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            node_id: 0,
            listen: String::new(),
            advertise: None,
            data_dir: PathBuf::new(),
            addr_file: None,
            heartbeat_ms: 250,
            election_min_ms: 1500,
            election_max_ms: 3000,
            request_timeout_ms: 5000,
            checkpoint_interval_ms: 60_000,
            checkpoint_decrees_min: 10_000,
            memtable_size_bytes: 8 << 20,
            log_level: "info".into(),
            allow_fault_injection: false,
            block_cache_size_bytes: 256 << 20,
            write_buffer_size_bytes: 512 << 20,
            background_jobs: 4,
            node_failure_grace_ms: 60_000,
            metrics_listen: None,
            auth_token_file: None,
            bulk_load_root: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }
}

impl ServerConfig {
    /// Reads a JSON config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if self.node_id == 0 {
            return bad("node_id must be at least 1");
        }
        if self.listen.is_empty() {
            return bad("listen address missing");
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir missing");
        }
        if !(self.heartbeat_ms > 0
            && self.heartbeat_ms < self.election_min_ms
            && self.election_min_ms < self.election_max_ms)
        {
            return bad("need 0 < heartbeat_ms < election_min_ms < election_max_ms");
        }
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms must be positive");
        }
        if self.memtable_size_bytes < 64 << 10 {
            return bad("memtable_size_bytes below 64 KiB");
        }
        if self.background_jobs == 0 || self.background_jobs > MAX_BACKGROUND_JOBS {
            return bad("background_jobs must be in 1..=256");
        }
        if self.write_buffer_size_bytes != 0
            && self.write_buffer_size_bytes < self.memtable_size_bytes as u64
        {
            return bad("write_buffer_size_bytes below memtable_size_bytes (0 = unbounded)");
        }
        if usize::try_from(self.block_cache_size_bytes).is_err()
            || usize::try_from(self.write_buffer_size_bytes).is_err()
        {
            return bad("block_cache_size_bytes / write_buffer_size_bytes too large");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key go together");
        }
        if self.tls_ca.is_some() && self.tls_cert.is_none() {
            return bad("tls_ca needs tls_cert and tls_key");
        }
        self.level()?;
        Ok(())
    }

    /// The log level.
    pub fn level(&self) -> Result<tracing::Level> {
        self.log_level
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("log level {:?}", self.log_level)))
    }

    /// The openraft configuration of every replica.
    pub fn raft_config(&self) -> openraft::Config {
        let mut c = siltdb_replica::replica::ReplicaOptions::default_raft_config();
        c.heartbeat_interval = self.heartbeat_ms;
        c.election_timeout_min = self.election_min_ms;
        c.election_timeout_max = self.election_max_ms;
        c
    }

    /// The node's shared engine resources, sized by this configuration.
    pub fn engine_resources(
        &self,
    ) -> Result<std::sync::Arc<siltdb_replica::siltdb::SharedResources>> {
        use siltdb_replica::siltdb::{SharedResources, SharedResourcesOptions};
        SharedResources::new(SharedResourcesOptions {
            block_cache_size_bytes: usize::try_from(self.block_cache_size_bytes).unwrap_or(0),
            background_jobs: self.background_jobs,
            background_write_rate_bytes: 0,
            write_buffer_size_bytes: usize::try_from(self.write_buffer_size_bytes)
                .unwrap_or(usize::MAX),
        })
        .map_err(|e| Error::InvalidArgument(format!("engine resources: {e}")))
    }

    /// Every replica's periodic checkpoint settings: [`ServerConfig::checkpoint_interval_ms`]
    /// (0: no task) and [`ServerConfig::checkpoint_decrees_min`].
    pub fn maintenance(&self) -> siltdb_replica::maintenance::MaintenanceOptions {
        siltdb_replica::maintenance::MaintenanceOptions {
            interval: (self.checkpoint_interval_ms > 0)
                .then(|| Duration::from_millis(self.checkpoint_interval_ms)),
            min_new_decrees: self.checkpoint_decrees_min,
        }
    }

    /// [`ServerConfig::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_defaults_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"node_id": 2, "listen": "127.0.0.1:0", "data_dir": "/tmp/x"}"#,
        )
        .unwrap();
        let c = ServerConfig::from_file(&p).unwrap();
        c.validate().unwrap();
        assert_eq!(c.heartbeat_ms, 250);
        std::fs::write(&p, r#"{"node_id": 2, "bogus": 1}"#).unwrap();
        assert!(ServerConfig::from_file(&p).is_err());
        let mut c2 = c.clone();
        c2.election_min_ms = 100;
        assert!(c2.validate().is_err());
        c2 = c.clone();
        c2.node_id = 0;
        assert!(c2.validate().is_err());
        c2 = c.clone();
        c2.log_level = "loud".into();
        assert!(c2.validate().is_err());
        c2 = c.clone();
        c2.background_jobs = 0;
        assert!(c2.validate().is_err());
        c2 = c;
        c2.write_buffer_size_bytes = 1024;
        assert!(c2.validate().is_err());
    }

    #[test]
    fn the_checkpoint_flags_configure_every_replicas_one_task() {
        let mut c = ServerConfig::default();
        let m = c.maintenance();
        assert_eq!(m.interval, Some(Duration::from_secs(60)));
        assert_eq!(m.min_new_decrees, 10_000);
        c.checkpoint_interval_ms = 300;
        c.checkpoint_decrees_min = 10;
        let m = c.maintenance();
        assert_eq!(m.interval, Some(Duration::from_millis(300)));
        assert_eq!(m.min_new_decrees, 10);
        c.checkpoint_interval_ms = 0;
        assert_eq!(c.maintenance().interval, None);
    }

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration_ms("250"), Ok(250));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        for bad in [
            "",
            "s",
            "1.5s",
            "-3s",
            "10 fortnights",
            "99999999999999999999",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        for bad in ["", "MiB", "12 parsecs", "-1", "99999999999T", "1.5G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}

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
    /// Period of the checkpoint timer; 0 = off. Default 60000 ms.
    pub checkpoint_interval_ms: u64,
    /// Entries applied since the last checkpoint before the timer checkpoints. Default 10000.
    pub checkpoint_decrees_min: u64,
    /// Engine memtable size per replica. Default 8 MiB.
    pub memtable_size_bytes: usize,
    /// Log level: error, warn, info, debug, trace. Default info.
    pub log_level: String,
    /// Accept the fault-injection requests (`Partition`, `Heal`). Default false: tests only.
    pub allow_fault_injection: bool,
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
        c2 = c;
        c2.log_level = "loud".into();
        assert!(c2.validate().is_err());
    }
}

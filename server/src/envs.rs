//! App envs on this node: a table's runtime settings ([`siltdb_client::envs`], carried in its
//! layout) applied to every local replica of it while it serves.
//!
//! Layer: node (an `impl Node`, beside [`crate::node`]; the meta service and `UpdateTable`
//! bring the layouts).
//!
//! - **When.** At open (a replica opens with its table's envs: a restart, or a replica that
//!   moves in later), at every layout change (`Node::apply_envs` from `update_table`), and
//!   on the envs timer ([`Node::envs_tick`], every [`ENVS_TICK_INTERVAL`]) for what a replica
//!   can lose or what falls due: the usage scenario's engine options (a checkpoint install
//!   reopens the engine with the open-time options) and manual compactions.
//! - **Default TTL** is applied by the leader when a write arrives
//!   ([`resolve_expire`], in [`crate::pegasus::handler`]): the record carries its expiry, so
//!   every replica stores the same value; records written before keep theirs.
//! - **Throttling** replaces the rules of the replica's write and read throttles
//!   (`siltdb_replica::throttle`), keeping their counters.
//! - **Manual compaction** compacts the whole key range of every local replica (leader or
//!   not) when `manual_compact.once.trigger_time` passed, or a time of
//!   `manual_compact.periodic.trigger_time` passed today (UTC), after the replica's last manual
//!   compaction finished ([`compaction_due`]); never while `manual_compact.disabled` is true.
//!   The finish time is stored in `<replica dir>/manual_compact` ([`MANUAL_COMPACT_FILE`],
//!   `docs/format.md`) so a restart does not compact again.
//! - **Usage scenario** `bulk_load` relaxes the engine's stall triggers
//!   ([`scenario_options`]); `normal` restores the engine defaults.

use crate::error::Result;
use crate::layout::TableLayout;
use crate::node::Node;
use serde::{Deserialize, Serialize};
use siltdb_client::envs::{TableEnvs, UsageScenario};
use siltdb_client::pegasus::{EXPIRE_NEVER, EXPIRE_TABLE_DEFAULT};
use siltdb_replica::replica::Replica;
use siltdb_replica::siltdb::MutableOptions;
use siltdb_replica::Gpid;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Period of the envs timer.
pub const ENVS_TICK_INTERVAL: Duration = Duration::from_secs(1);
/// The file (in a replica directory) holding the finish time of its last manual compaction.
pub const MANUAL_COMPACT_FILE: &str = "manual_compact";
/// Version of [`MANUAL_COMPACT_FILE`].
pub const MANUAL_COMPACT_FORMAT_VERSION: u32 = 1;
/// L0 files at which writes slow down in the `bulk_load` scenario.
pub const BULK_LOAD_L0_SLOWDOWN_TRIGGER: usize = 1_000;
/// L0 files at which writes stop in the `bulk_load` scenario.
pub const BULK_LOAD_L0_STOP_TRIGGER: usize = 2_000;
/// Pending compaction bytes at which writes slow down in the `bulk_load` scenario (1 PiB).
pub const BULK_LOAD_SOFT_PENDING_BYTES: u64 = 1 << 50;
/// Pending compaction bytes at which writes stop in the `bulk_load` scenario (2 PiB).
pub const BULK_LOAD_HARD_PENDING_BYTES: u64 = 1 << 51;
/// Seconds in a day (periodic compaction times are times of a UTC day).
const DAY_SECS: u64 = 86_400;

/// The stored expiry (ms since the epoch, 0 = never) of a write request's `expire_ms` arriving
/// at `now_ms`: [`EXPIRE_TABLE_DEFAULT`] takes the table's `default_ttl` (none = never),
/// [`EXPIRE_NEVER`] is never, anything else is kept.
pub fn resolve_expire(expire_ms: u64, now_ms: u64, default_ttl_secs: u64) -> u64 {
    match expire_ms {
        EXPIRE_NEVER => 0,
        EXPIRE_TABLE_DEFAULT if default_ttl_secs == 0 => 0,
        EXPIRE_TABLE_DEFAULT => now_ms.saturating_add(default_ttl_secs.saturating_mul(1000)),
        at => at,
    }
}

/// The engine options of a usage scenario: `normal` = the engine defaults, `bulk_load` =
/// stall triggers relaxed so that a burst of writes is not slowed down.
pub fn scenario_options(s: UsageScenario) -> MutableOptions {
    let d = siltdb_replica::siltdb::Options::default();
    let (slow, stop, soft, hard) = match s {
        UsageScenario::Normal => (
            d.l0_slowdown_trigger,
            d.l0_stop_trigger,
            d.soft_pending_compaction_bytes_limit,
            d.hard_pending_compaction_bytes_limit,
        ),
        UsageScenario::BulkLoad => (
            BULK_LOAD_L0_SLOWDOWN_TRIGGER,
            BULK_LOAD_L0_STOP_TRIGGER,
            BULK_LOAD_SOFT_PENDING_BYTES,
            BULK_LOAD_HARD_PENDING_BYTES,
        ),
    };
    MutableOptions {
        l0_slowdown_trigger: Some(slow),
        l0_stop_trigger: Some(stop),
        soft_pending_compaction_bytes_limit: Some(soft),
        hard_pending_compaction_bytes_limit: Some(hard),
        ..MutableOptions::default()
    }
}

/// Sets the options of scenario `s` in `o` (the options a replica's engine opens with).
pub(crate) fn set_scenario(o: &mut siltdb_replica::siltdb::Options, s: UsageScenario) {
    let m = scenario_options(s);
    let d = siltdb_replica::siltdb::Options::default();
    o.l0_slowdown_trigger = m.l0_slowdown_trigger.unwrap_or(d.l0_slowdown_trigger);
    o.l0_stop_trigger = m.l0_stop_trigger.unwrap_or(d.l0_stop_trigger);
    o.soft_pending_compaction_bytes_limit = m
        .soft_pending_compaction_bytes_limit
        .unwrap_or(d.soft_pending_compaction_bytes_limit);
    o.hard_pending_compaction_bytes_limit = m
        .hard_pending_compaction_bytes_limit
        .unwrap_or(d.hard_pending_compaction_bytes_limit);
}

/// Whether an engine's options already are those of `s` (nothing to change).
fn has_scenario(o: &siltdb_replica::siltdb::Options, s: UsageScenario) -> bool {
    let want = scenario_options(s);
    want.l0_slowdown_trigger == Some(o.l0_slowdown_trigger)
        && want.l0_stop_trigger == Some(o.l0_stop_trigger)
        && want.soft_pending_compaction_bytes_limit == Some(o.soft_pending_compaction_bytes_limit)
        && want.hard_pending_compaction_bytes_limit == Some(o.hard_pending_compaction_bytes_limit)
}

/// Whether a replica whose last manual compaction finished at `last_finish_secs` (0 = never)
/// compacts at `now_secs` (see the module doc).
pub fn compaction_due(envs: &TableEnvs, last_finish_secs: u64, now_secs: u64) -> bool {
    if envs.manual_compact_disabled {
        return false;
    }
    if let Some(t) = envs.manual_compact_once_secs {
        if t <= now_secs && last_finish_secs < t {
            return true;
        }
    }
    let day_start = now_secs - now_secs % DAY_SECS;
    envs.manual_compact_periodic.iter().any(|tod| {
        let t = day_start + u64::from(tod.0) * 60;
        t <= now_secs && last_finish_secs < t
    })
}

/// The contents of [`MANUAL_COMPACT_FILE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualCompactRecord {
    /// [`MANUAL_COMPACT_FORMAT_VERSION`].
    pub format_version: u32,
    /// Unix seconds at which the last manual compaction finished.
    pub last_finish_secs: u64,
    /// Manual compactions of this replica so far.
    pub compactions: u64,
}

/// The stored record of a replica directory; `None` when it never compacted manually (or the
/// file is unreadable: compacting again is harmless).
pub fn read_manual_compact(replica_dir: &Path) -> Option<ManualCompactRecord> {
    let bytes = std::fs::read(replica_dir.join(MANUAL_COMPACT_FILE)).ok()?;
    let r: ManualCompactRecord = serde_json::from_slice(&bytes).ok()?;
    (r.format_version == MANUAL_COMPACT_FORMAT_VERSION).then_some(r)
}

/// Stores `r` in `replica_dir` ([`siltdb::fs::write_atomic`]: temp file, fsync, rename,
/// directory fsync).
fn write_manual_compact(replica_dir: &Path, r: &ManualCompactRecord) -> Result<()> {
    let path = replica_dir.join(MANUAL_COMPACT_FILE);
    let bytes = serde_json::to_vec(r)
        .map_err(|e| crate::error::Error::Internal(format!("manual compact record: {e}")))?;
    siltdb::fs::write_atomic(&siltdb::fs::StdFs, &path, &bytes)
        .map_err(|e| crate::error::Error::Internal(e.to_string()))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Node {
    /// Applies `layout`'s envs to this node's open replicas of it (throttling, usage
    /// scenario). A value the replica refuses is logged and skipped (layouts are validated,
    /// so it does not happen with a stored layout).
    pub(crate) fn apply_envs(&self, layout: &TableLayout) {
        let envs = layout.table_envs();
        let replicas: Vec<(Gpid, Arc<Replica>)> = {
            let all = self.replicas.read();
            (0..layout.partition_count)
                .filter_map(|p| {
                    let g = layout.gpid(p);
                    all.get(&g).map(|r| (g, Arc::clone(r)))
                })
                .collect()
        };
        for (gpid, r) in replicas {
            apply_to_replica(gpid, &envs, &r);
        }
    }

    /// The envs timer: re-applies usage scenarios an engine lost and runs the manual
    /// compactions that are due, one replica at a time (each in a blocking task).
    pub async fn envs_tick(&self) {
        let mut due: Vec<(Gpid, Arc<Replica>, PathBuf)> = Vec::new();
        let now = now_secs();
        for (layout, _, r, dir) in self.all_local_replicas() {
            let envs = layout.table_envs();
            let db = r.state_machine().db();
            if !has_scenario(&db.options(), envs.usage_scenario) {
                apply_to_replica(r.gpid(), &envs, &r);
            }
            let has_schedule =
                envs.manual_compact_once_secs.is_some() || !envs.manual_compact_periodic.is_empty();
            if !has_schedule {
                continue;
            }
            let gpid = r.gpid();
            let last = self.manual_compact_record(gpid, &dir);
            if compaction_due(&envs, last.map_or(0, |l| l.last_finish_secs), now) {
                due.push((gpid, r, dir));
            }
        }
        for (gpid, r, dir) in due {
            if let Err(e) = self.manual_compact(gpid, r, dir).await {
                tracing::warn!(%gpid, error = %e, "manual compaction failed");
            }
        }
    }

    fn manual_compact_record(&self, gpid: Gpid, dir: &Path) -> Option<ManualCompactRecord> {
        if let Some(r) = self.manual_compacts.lock().get(&gpid) {
            return Some(*r);
        }
        let stored = read_manual_compact(dir)?;
        self.manual_compacts.lock().insert(gpid, stored);
        Some(stored)
    }

    /// Compacts the replica's whole key range and records the finish time.
    async fn manual_compact(&self, gpid: Gpid, r: Arc<Replica>, dir: PathBuf) -> Result<()> {
        let db = r.state_machine().db();
        drop(r);
        let before = self.manual_compacts.lock().get(&gpid).copied();
        tracing::info!(%gpid, "manual compaction starts");
        let record = tokio::task::spawn_blocking(move || {
            db.compact_range(None::<&[u8]>, None::<&[u8]>)
                .map_err(|e| crate::error::Error::Internal(format!("compact range: {e}")))?;
            let r = ManualCompactRecord {
                format_version: MANUAL_COMPACT_FORMAT_VERSION,
                last_finish_secs: now_secs(),
                compactions: before.map_or(0, |b| b.compactions).saturating_add(1),
            };
            write_manual_compact(&dir, &r)?;
            Ok::<_, crate::error::Error>(r)
        })
        .await
        .map_err(|e| crate::error::Error::Internal(format!("manual compaction task: {e}")))??;
        tracing::info!(%gpid, compactions = record.compactions, "manual compaction done");
        self.manual_compacts.lock().insert(gpid, record);
        Ok(())
    }
}

/// Applies throttling and the usage scenario to one replica.
fn apply_to_replica(gpid: Gpid, envs: &TableEnvs, r: &Replica) {
    let writes = r
        .throttling()
        .reconfigure(&envs.write_throttling, &envs.write_throttling_by_size);
    let reads = r.read_throttling().reconfigure(&envs.read_throttling, "");
    for (what, res) in [("write throttling", writes), ("read throttling", reads)] {
        if let Err(e) = res {
            tracing::warn!(%gpid, error = %e, "{what} env not applied");
        }
    }
    let db = r.state_machine().db();
    if !has_scenario(&db.options(), envs.usage_scenario) {
        match db.set_options(&scenario_options(envs.usage_scenario)) {
            Ok(()) => {
                tracing::info!(%gpid, scenario = ?envs.usage_scenario, "usage scenario applied")
            }
            Err(e) => tracing::warn!(%gpid, error = %e, "usage scenario not applied"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb_client::envs::TimeOfDay;

    #[test]
    fn expiry_of_a_request() {
        assert_eq!(resolve_expire(EXPIRE_TABLE_DEFAULT, 1_000, 0), 0);
        assert_eq!(resolve_expire(EXPIRE_TABLE_DEFAULT, 1_000, 5), 6_000);
        assert_eq!(resolve_expire(EXPIRE_NEVER, 1_000, 5), 0);
        assert_eq!(resolve_expire(77, 1_000, 5), 77);
    }

    #[test]
    fn manual_compaction_schedule() {
        let day = 20_000 * DAY_SECS;
        let mut e = TableEnvs {
            manual_compact_once_secs: Some(day + 100),
            ..TableEnvs::default()
        };
        assert!(!compaction_due(&e, 0, day + 99), "not yet");
        assert!(compaction_due(&e, 0, day + 100));
        assert!(
            !compaction_due(&e, day + 101, day + 200),
            "done after the trigger"
        );
        e.manual_compact_disabled = true;
        assert!(!compaction_due(&e, 0, day + 100));
        let e = TableEnvs {
            manual_compact_periodic: vec![TimeOfDay(60), TimeOfDay(120)],
            ..TableEnvs::default()
        };
        assert!(!compaction_due(&e, day - 10, day + 3_599), "before 01:00");
        assert!(compaction_due(&e, day - 10, day + 3_600));
        assert!(!compaction_due(&e, day + 3_601, day + 7_000));
        assert!(compaction_due(&e, day + 3_601, day + 7_200), "02:00");
        assert!(
            compaction_due(&e, day + 7_300, day + DAY_SECS + 3_600),
            "next day"
        );
    }

    #[test]
    fn scenarios_are_valid_engine_options() {
        let d = siltdb_replica::siltdb::Options::default();
        assert!(has_scenario(&d, UsageScenario::Normal));
        assert!(!has_scenario(&d, UsageScenario::BulkLoad));
        let dir = tempfile::tempdir().unwrap();
        let db = siltdb_replica::siltdb::Db::open(dir.path(), d).unwrap();
        db.set_options(&scenario_options(UsageScenario::BulkLoad))
            .unwrap();
        assert!(has_scenario(&db.options(), UsageScenario::BulkLoad));
        assert_eq!(db.options().l0_stop_trigger, BULK_LOAD_L0_STOP_TRIGGER);
        db.set_options(&scenario_options(UsageScenario::Normal))
            .unwrap();
        assert!(has_scenario(&db.options(), UsageScenario::Normal));
    }

    #[test]
    fn manual_compact_record_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_manual_compact(dir.path()), None);
        let r = ManualCompactRecord {
            format_version: MANUAL_COMPACT_FORMAT_VERSION,
            last_finish_secs: 42,
            compactions: 3,
        };
        write_manual_compact(dir.path(), &r).unwrap();
        assert_eq!(read_manual_compact(dir.path()), Some(r));
    }
}

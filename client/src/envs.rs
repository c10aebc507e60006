//! App envs: per-table runtime settings (Pegasus' app envs), stored as `key → value` strings in
//! the table's layout ([`TableLayout::envs`]) and applied by every replica of the table while it
//! serves (`siltdb_server::envs`). A change is a successor layout (epoch + 1), recorded by the
//! meta service where the cluster has one and pushed to every node of the table like any layout
//! change, so envs survive restarts and reach replicas that open later.
//!
//! The keys are Pegasus' names:
//!
//! | key | value | effect |
//! |---|---|---|
//! | `default_ttl` | seconds (0 = none) | a write without an explicit TTL expires this long after it |
//! | `replica.write_throttling` | throttling string | writes per second per partition |
//! | `replica.write_throttling_by_size` | throttling string | written bytes per second per partition |
//! | `replica.read_throttling` | throttling string | reads per second per partition |
//! | `manual_compact.disabled` | `true` / `false` | no manual compaction while true |
//! | `manual_compact.once.trigger_time` | Unix seconds | one full compaction of every replica once that time passed |
//! | `manual_compact.periodic.trigger_time` | `HH:MM[,HH:MM...]` (UTC) | a full compaction each day at each time |
//! | `rocksdb.usage_scenario` | `normal` / `bulk_load` | `bulk_load` relaxes the engine's write-stall triggers |
//!
//! A throttling string is `<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms>` ([`crate::throttling`]).
//! Unknown keys and bad values are refused with a message naming the valid keys or the valid
//! value form ([`check_env`]).

use crate::client::Client;
use crate::error::{Error, Result, ServerError};
use crate::layout::TableLayout;
use crate::meta::{MetaRequest, META_TABLE};
use crate::proto::{ClientRequest, ClientResponse};
use crate::throttling::ThrottleConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// Key: the default TTL of writes without an explicit one, in seconds.
pub const DEFAULT_TTL: &str = "default_ttl";
/// Key: write throttling by request count.
pub const WRITE_THROTTLING: &str = "replica.write_throttling";
/// Key: write throttling by bytes.
pub const WRITE_THROTTLING_BY_SIZE: &str = "replica.write_throttling_by_size";
/// Key: read throttling by request count.
pub const READ_THROTTLING: &str = "replica.read_throttling";
/// Key: manual compaction disabled.
pub const MANUAL_COMPACT_DISABLED: &str = "manual_compact.disabled";
/// Key: one manual compaction once this Unix time (seconds) passed.
pub const MANUAL_COMPACT_ONCE_TRIGGER_TIME: &str = "manual_compact.once.trigger_time";
/// Key: daily manual compactions at these UTC times of day.
pub const MANUAL_COMPACT_PERIODIC_TRIGGER_TIME: &str = "manual_compact.periodic.trigger_time";
/// Key: the engine's usage scenario.
pub const USAGE_SCENARIO: &str = "rocksdb.usage_scenario";

/// Every key with the form of its value (for messages and documentation).
pub const ENV_KEYS: &[(&str, &str)] = &[
    (DEFAULT_TTL, "seconds, 0 to 3153600000 (0 = no default TTL)"),
    (
        WRITE_THROTTLING,
        "<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms> (either part optional)",
    ),
    (
        WRITE_THROTTLING_BY_SIZE,
        "<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms> in bytes (either part optional)",
    ),
    (
        READ_THROTTLING,
        "<N>[K|M]*delay*<ms>,<N>[K|M]*reject*<ms> (either part optional)",
    ),
    (MANUAL_COMPACT_DISABLED, "true or false"),
    (MANUAL_COMPACT_ONCE_TRIGGER_TIME, "Unix time in seconds"),
    (
        MANUAL_COMPACT_PERIODIC_TRIGGER_TIME,
        "HH:MM[,HH:MM...] in UTC (at most 24 times)",
    ),
    (USAGE_SCENARIO, "normal or bulk_load"),
];

/// Longest env value.
pub const MAX_ENV_VALUE_BYTES: usize = 1024;
/// Largest `default_ttl`: 100 years, in seconds.
pub const MAX_DEFAULT_TTL_SECS: u64 = 3_153_600_000;
/// Most times of day in `manual_compact.periodic.trigger_time`.
pub const MAX_PERIODIC_TRIGGER_TIMES: usize = 24;

/// The engine's usage scenario (`rocksdb.usage_scenario`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsageScenario {
    /// The configured stall triggers.
    #[default]
    Normal,
    /// Relaxed stall triggers: a bulk of writes is not slowed down by L0 files or pending
    /// compaction bytes piling up.
    BulkLoad,
}

/// A time of day in UTC, in minutes after midnight (0 to 1439).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(pub u16);

/// The envs of a table, parsed. Every field has the value of an absent key by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableEnvs {
    /// `default_ttl` in seconds; 0 = none.
    pub default_ttl_secs: u64,
    /// `replica.write_throttling` (empty = off).
    pub write_throttling: String,
    /// `replica.write_throttling_by_size` (empty = off).
    pub write_throttling_by_size: String,
    /// `replica.read_throttling` (empty = off).
    pub read_throttling: String,
    /// `manual_compact.disabled`.
    pub manual_compact_disabled: bool,
    /// `manual_compact.once.trigger_time`, Unix seconds.
    pub manual_compact_once_secs: Option<u64>,
    /// `manual_compact.periodic.trigger_time`, sorted.
    pub manual_compact_periodic: Vec<TimeOfDay>,
    /// `rocksdb.usage_scenario`.
    pub usage_scenario: UsageScenario,
}

fn valid_keys() -> String {
    ENV_KEYS
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(", ")
}

fn value_form(key: &str) -> Option<&'static str> {
    ENV_KEYS.iter().find(|(k, _)| *k == key).map(|(_, f)| *f)
}

fn bad_value(key: &str, value: &str, why: &str) -> Error {
    let form = value_form(key).unwrap_or("?");
    Error::InvalidArgument(format!(
        "bad value {value:?} for env {key}: {why}; the valid form is {form}"
    ))
}

/// Refuses a key that is not one of [`ENV_KEYS`] (the message lists them).
pub fn check_key(key: &str) -> Result<()> {
    if value_form(key).is_some() {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "unknown env {key:?}; the valid keys are: {}",
        valid_keys()
    )))
}

fn parse_time_of_day(s: &str) -> Option<TimeOfDay> {
    let (h, m) = s.trim().split_once(':')?;
    let digits = |x: &str| !x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(TimeOfDay(h * 60 + m))
}

/// Sets the field of `envs` that `key` names from `value`, refusing a bad value with a
/// message that names the valid form.
fn apply(envs: &mut TableEnvs, key: &str, value: &str) -> Result<()> {
    check_key(key)?;
    if value.len() > MAX_ENV_VALUE_BYTES {
        return Err(Error::InvalidArgument(format!(
            "value of env {key} is {} bytes, longer than {MAX_ENV_VALUE_BYTES}",
            value.len()
        )));
    }
    let bad = |why: &str| bad_value(key, value, why);
    let throttling = |s: &str| -> Result<String> {
        ThrottleConfig::parse(s).map_err(|e| bad(&e.to_string()))?;
        Ok(s.trim().to_string())
    };
    match key {
        DEFAULT_TTL => {
            let secs: u64 = value.trim().parse().map_err(|_| bad("not a number"))?;
            if secs > MAX_DEFAULT_TTL_SECS {
                return Err(bad("too large"));
            }
            envs.default_ttl_secs = secs;
        }
        WRITE_THROTTLING => envs.write_throttling = throttling(value)?,
        WRITE_THROTTLING_BY_SIZE => envs.write_throttling_by_size = throttling(value)?,
        READ_THROTTLING => envs.read_throttling = throttling(value)?,
        MANUAL_COMPACT_DISABLED => {
            envs.manual_compact_disabled = match value.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("not true or false")),
            }
        }
        MANUAL_COMPACT_ONCE_TRIGGER_TIME => {
            let secs: u64 = value.trim().parse().map_err(|_| bad("not a number"))?;
            envs.manual_compact_once_secs = Some(secs);
        }
        MANUAL_COMPACT_PERIODIC_TRIGGER_TIME => {
            let mut times = value
                .split(',')
                .map(|t| parse_time_of_day(t).ok_or_else(|| bad(&format!("{t:?} is not HH:MM"))))
                .collect::<Result<Vec<_>>>()?;
            if times.len() > MAX_PERIODIC_TRIGGER_TIMES {
                return Err(bad("too many times"));
            }
            times.sort();
            times.dedup();
            envs.manual_compact_periodic = times;
        }
        USAGE_SCENARIO => {
            envs.usage_scenario = match value.trim() {
                "normal" => UsageScenario::Normal,
                "bulk_load" => UsageScenario::BulkLoad,
                _ => return Err(bad("unknown scenario")),
            }
        }
        _ => return Err(Error::Internal(format!("env {key} has no parser"))),
    }
    Ok(())
}

/// Refuses an unknown `key` or a bad `value` for it, with a message naming the valid keys or
/// the valid value form.
pub fn check_env(key: &str, value: &str) -> Result<()> {
    apply(&mut TableEnvs::default(), key, value)
}

impl TableEnvs {
    /// Parses a table's env map, refusing unknown keys and bad values.
    pub fn parse(envs: &BTreeMap<String, String>) -> Result<TableEnvs> {
        let mut out = TableEnvs::default();
        for (k, v) in envs {
            apply(&mut out, k, v)?;
        }
        Ok(out)
    }
}

impl TableLayout {
    /// The table's envs, parsed ([`TableLayout::validate`] refuses a layout whose envs do not
    /// parse, so a stored layout's always do; otherwise the defaults).
    pub fn table_envs(&self) -> TableEnvs {
        TableEnvs::parse(&self.envs).unwrap_or_default()
    }

    /// The `default_ttl` env in seconds (0 = none).
    pub fn default_ttl_secs(&self) -> u64 {
        self.table_envs().default_ttl_secs
    }

    /// The successor layout (epoch + 1) with env `key` set to `value` (`None`: removed).
    /// Refused for an unknown key, a bad value, or the meta table.
    pub fn with_env(&self, key: &str, value: Option<&str>) -> Result<TableLayout> {
        if self.name == META_TABLE {
            return Err(Error::InvalidArgument(format!(
                "the meta table {META_TABLE} has no envs"
            )));
        }
        check_key(key)?;
        let mut next = self.clone();
        match value {
            Some(v) => {
                check_env(key, v)?;
                next.envs.insert(key.to_string(), v.trim().to_string());
            }
            None => {
                next.envs.remove(key);
            }
        }
        next.epoch = self
            .epoch
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("layout epoch overflow".into()))?;
        Ok(next)
    }
}

impl Client {
    /// Sets env `key` of `table` to `value` (through the meta service when the cluster has one,
    /// else on every node of the table). Returns the new layout.
    pub async fn set_env(&self, table: &str, key: &str, value: &str) -> Result<TableLayout> {
        check_env(key, value)?;
        let req = MetaRequest::SetEnv {
            table: table.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        };
        self.change_env(table, key, Some(value), req).await
    }

    /// Removes env `key` of `table` (like [`Client::set_env`]). Returns the new layout.
    pub async fn del_env(&self, table: &str, key: &str) -> Result<TableLayout> {
        check_key(key)?;
        let req = MetaRequest::DelEnv {
            table: table.to_string(),
            key: key.to_string(),
        };
        self.change_env(table, key, None, req).await
    }

    /// The envs of `table`: the meta service's record, or the newest layout on its nodes (no
    /// meta service, or a table it does not know).
    pub async fn envs(&self, table: &str) -> Result<BTreeMap<String, String>> {
        if self.has_meta().await {
            match self.meta(MetaRequest::Catalog, ENV_RPC_TIMEOUT).await? {
                ClientResponse::Catalog(c) => {
                    if let Some(t) = c.tables.into_iter().find(|t| t.name == table) {
                        return Ok(t.envs);
                    }
                    // Not in the catalog: a table created on its nodes directly.
                }
                ClientResponse::Error(e) => return Err(Error::Server(e)),
                other => return Err(Error::Transport(format!("unexpected answer {other:?}"))),
            }
        }
        Ok(self.newest_layout(table).await?.envs)
    }

    async fn change_env(
        &self,
        table: &str,
        key: &str,
        value: Option<&str>,
        req: MetaRequest,
    ) -> Result<TableLayout> {
        if self.has_meta().await {
            match self.meta(req, ENV_RPC_TIMEOUT).await? {
                ClientResponse::Tables(mut ts) if ts.len() == 1 => return Ok(ts.remove(0)),
                // A table created on its nodes directly is not in the catalog: changed there.
                ClientResponse::Error(ServerError::NoSuchTable(_)) => {}
                ClientResponse::Error(e) => return Err(Error::Server(e)),
                other => return Err(Error::Transport(format!("unexpected answer {other:?}"))),
            }
        }
        // No meta service: the newest layout's successor goes to every node of the table.
        let next = self.newest_layout(table).await?.with_env(key, value)?;
        let update = ClientRequest::UpdateTable(next.clone());
        for n in &next.nodes {
            if let ClientResponse::Error(e) = self.retry_on(&n.addr, &update).await? {
                return Err(Error::Server(e));
            }
        }
        self.remember_layout(&next);
        Ok(next)
    }
}

/// Bound on one env request to the meta service (it pushes the layout to every node).
const ENV_RPC_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NodeInfo;

    #[test]
    fn every_key_parses_its_form() {
        let mut m = BTreeMap::new();
        for (k, v) in [
            (DEFAULT_TTL, "3600"),
            (WRITE_THROTTLING, "300*delay*100,500*reject*200"),
            (WRITE_THROTTLING_BY_SIZE, "2M*delay*10"),
            (READ_THROTTLING, "1K*reject*5"),
            (MANUAL_COMPACT_DISABLED, "true"),
            (MANUAL_COMPACT_ONCE_TRIGGER_TIME, "1700000000"),
            (MANUAL_COMPACT_PERIODIC_TRIGGER_TIME, "21:30,3:00"),
            (USAGE_SCENARIO, "bulk_load"),
        ] {
            check_env(k, v).unwrap();
            m.insert(k.to_string(), v.to_string());
        }
        let e = TableEnvs::parse(&m).unwrap();
        assert_eq!(e.default_ttl_secs, 3600);
        assert_eq!(e.write_throttling, "300*delay*100,500*reject*200");
        assert_eq!(e.write_throttling_by_size, "2M*delay*10");
        assert_eq!(e.read_throttling, "1K*reject*5");
        assert!(e.manual_compact_disabled);
        assert_eq!(e.manual_compact_once_secs, Some(1_700_000_000));
        assert_eq!(
            e.manual_compact_periodic,
            vec![TimeOfDay(180), TimeOfDay(21 * 60 + 30)]
        );
        assert_eq!(e.usage_scenario, UsageScenario::BulkLoad);
        assert_eq!(
            TableEnvs::parse(&BTreeMap::new()).unwrap(),
            TableEnvs::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_naming_what_is_valid() {
        let e = check_env("default.ttl", "1").unwrap_err().to_string();
        assert!(
            e.contains("unknown env") && e.contains(DEFAULT_TTL) && e.contains(USAGE_SCENARIO),
            "{e}"
        );
        for (k, v, form) in [
            (DEFAULT_TTL, "-1", "seconds"),
            (DEFAULT_TTL, "99999999999", "seconds"),
            (DEFAULT_TTL, "ten", "seconds"),
            (WRITE_THROTTLING, "300*wait*100", "*delay*"),
            (READ_THROTTLING, "x", "*reject*"),
            (MANUAL_COMPACT_DISABLED, "yes", "true or false"),
            (MANUAL_COMPACT_ONCE_TRIGGER_TIME, "now", "Unix time"),
            (MANUAL_COMPACT_PERIODIC_TRIGGER_TIME, "25:00", "HH:MM"),
            (MANUAL_COMPACT_PERIODIC_TRIGGER_TIME, "3:60", "HH:MM"),
            (MANUAL_COMPACT_PERIODIC_TRIGGER_TIME, "3", "HH:MM"),
            (USAGE_SCENARIO, "prefer_read", "normal or bulk_load"),
        ] {
            let e = check_env(k, v).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(form), "{k}={v}: {e}");
        }
        let long = "9".repeat(MAX_ENV_VALUE_BYTES + 1);
        assert!(check_env(DEFAULT_TTL, &long).is_err());
    }

    #[test]
    fn with_env_is_a_successor_and_layouts_with_bad_envs_are_invalid() {
        let nodes = vec![NodeInfo {
            id: 1,
            addr: "127.0.0.1:1".into(),
        }];
        let l = TableLayout::new("t", 1, 2, 1, nodes.clone());
        let m = l.with_env(DEFAULT_TTL, Some("60")).unwrap();
        assert!(l.is_successor(&m));
        assert_eq!(m.default_ttl_secs(), 60);
        m.validate().unwrap();
        let back = m.with_env(DEFAULT_TTL, None).unwrap();
        assert_eq!(back.epoch, 2);
        assert_eq!(back.default_ttl_secs(), 0);
        assert!(l.with_env("nope", Some("1")).is_err());
        assert!(l.with_env(DEFAULT_TTL, Some("x")).is_err());
        let meta = crate::meta::meta_layout(nodes);
        assert!(meta.with_env(DEFAULT_TTL, Some("1")).is_err());
        let mut bad = l.clone();
        bad.envs.insert("nope".into(), "1".into());
        assert!(bad.validate().is_err());
    }
}

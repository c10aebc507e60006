//! Cross-cluster duplication (Pegasus' "duplication", seed S5): ship a partition's committed
//! mutations to a follower asynchronously, surviving restarts in every state.
//!
//! Files, one concept each:
//! - [`status`]: INIT → PREPARE → APP → LOG ⇄ PAUSE, any → REMOVED, a pure transition function;
//! - [`store`]: the persisted record (atomic JSON), re-deriving what may be absent;
//! - [`sink`]: where data goes ([`sink::DuplicationSink`], [`sink::DbFollower`],
//!   [`sink::TestSink`]);
//! - [`group_sink`]: a follower that is another replica group ([`group_sink::GroupSink`]);
//! - [`replay`]: what every sink replaying into a replica group shares (batch merging,
//!   checkpoint copy and streaming, clearing the follower), also used by the server crate's
//!   remote-cluster sink;
//! - [`source`]: where data comes from ([`source::ReplicaSource`] over a replica's plog);
//! - [`duplicator`]: the thread driving one duplication;
//! - [`manager`]: the operator API ([`manager::Duplications`]);
//! - [`metrics`]: the counters of each duplication.
//!
//! Plog GC never drops a decree a live duplication still needs: the manager publishes the
//! smallest `confirmed + 1` (or checkpoint + 1 before LOG) into the plog's
//! [`crate::plog::RetainFrom`], which cuts every purge down to it — but only within the lag
//! limit ([`DuplicationOptions::lag_max_decrees`], default [`MAX_LAG_DECREES`]): a stalled
//! duplication further behind stops holding the log, says so in its `last_error`, and once
//! what it needs is purged its fail mode applies. A stalled follower can therefore never keep
//! the log (and its memory) growing without bound.
//!
//! **No bulk load on a duplicated table** (as in Pegasus). A bulk-load ingestion is a control
//! mutation: its data is in SST files the plog does not hold, so shipping it as its (empty)
//! client writes would silently lose the loaded data on the follower. The duplicator ships
//! everything before it and then stops in front of it, in fail mode SLOW and SKIP alike (SKIP
//! is for unreadable plog ranges, not for data it could read but not ship), with `last_error`
//! naming the decree ("bulk-load ingestion at decree N cannot be duplicated ..."). The plog
//! keeps everything from that decree on while it waits. The way out is to remove the
//! duplication and add it again: the new one starts from a checkpoint taken after the
//! ingestion, which holds the loaded data. Sinks refuse a control mutation too.

pub mod duplicator;
pub mod group_sink;
pub mod manager;
pub mod metrics;
pub mod replay;
pub mod sink;
pub mod source;
pub mod status;
pub mod store;

pub use duplicator::{DuplicationOptions, MAX_LAG_DECREES};
pub use group_sink::{GroupSink, GroupSinkOptions, GroupSinkStats};
pub use manager::{DuplicationInfo, Duplications, SinkResolver};
pub use sink::{DbFollower, DuplicationSink, SinkError, TestMode, TestSink, TestSinkControl};
pub use source::{DuplicationSource, ReplicaSource};
pub use status::{Event, Status};
pub use store::{DuplicationRecord, FailMode};

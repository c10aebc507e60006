//! Cross-cluster duplication (Pegasus' "duplication", seed S5): ship a partition's committed
//! mutations to a follower asynchronously, surviving restarts in every state.
//!
//! Files, one concept each:
//! - [`status`]: INIT → PREPARE → APP → LOG ⇄ PAUSE, any → REMOVED, a pure transition function;
//! - [`store`]: the persisted record (atomic JSON), re-deriving what may be absent;
//! - [`sink`]: where data goes ([`sink::DuplicationSink`], [`sink::DbFollower`],
//!   [`sink::TestSink`]);
//! - [`source`]: where data comes from ([`source::ReplicaSource`] over a replica's plog);
//! - [`duplicator`]: the thread driving one duplication;
//! - [`manager`]: the operator API ([`manager::Duplications`]);
//! - [`metrics`]: the counters of each duplication.
//!
//! Plog GC never drops a decree a live duplication still needs: the manager publishes the
//! smallest `confirmed + 1` (or checkpoint + 1 before LOG) into the plog's
//! [`crate::plog::RetainFrom`], which cuts every purge down to it.

pub mod duplicator;
pub mod manager;
pub mod metrics;
pub mod sink;
pub mod source;
pub mod status;
pub mod store;

pub use duplicator::DuplicationOptions;
pub use manager::{DuplicationInfo, Duplications, SinkResolver};
pub use sink::{DbFollower, DuplicationSink, SinkError, TestMode, TestSink, TestSinkControl};
pub use source::{DuplicationSource, ReplicaSource};
pub use status::{Event, Status};
pub use store::{DuplicationRecord, FailMode};

//! Bulk-load statuses, the events that move them, and the **pure** transition function.
//!
//! Every state change of a partition's bulk load goes through [`transition`]; it has no side
//! effects, so it is tested exhaustively (every status × every event) and the drivers
//! ([`super::partition`], [`super::controller`]) only do what it allows. An event that does
//! not apply is a typed [`TransitionRejected`], never a panic.
//!
//! ```text
//!  INVALID ─Start→ DOWNLOADING ─DownloadsComplete→ DOWNLOADED ─IngestStart→ INGESTING ─IngestSucceeded→ SUCCEED
//!                   │  ↑  │ DownloadFailed → FAILED            IngestFailed → FAILED ┘
//!                 Pause│  Restart
//!                   ↓  │
//!                PAUSING ─PauseComplete→ PAUSED
//!  Cancel: DOWNLOADING | PAUSING | PAUSED → CANCELED.   ForceCancel: any → CANCELED.
//!  Rollback (stale ballot, transient error, restart): DOWNLOADING | DOWNLOADED | INGESTING → DOWNLOADING.
//!  Start also begins a new load from SUCCEED | FAILED | CANCELED; Clear: those (and INVALID) → INVALID.
//! ```

use serde::{Deserialize, Serialize};
pub use siltdb_client::bulk_load::BulkLoadStatus;

/// What can happen to a partition's bulk load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BulkLoadEvent {
    /// Begin a load (a fresh one, or a new one after a finished one).
    Start,
    /// Every file downloaded and verified.
    DownloadsComplete,
    /// A download failed for good (missing file, wrong size or checksum, I/O).
    DownloadFailed,
    /// The controller asks for ingestion.
    IngestStart,
    /// Ingestion and the checkpoint after it are done.
    IngestSucceeded,
    /// Ingestion failed for good (or ran out of its deadline).
    IngestFailed,
    /// Operator: pause the downloads.
    Pause,
    /// The downloads have stopped (cancelled and joined).
    PauseComplete,
    /// Operator: continue a paused load.
    Restart,
    /// Operator: cancel a load that has not reached ingestion.
    Cancel,
    /// Operator: cancel whatever the state.
    ForceCancel,
    /// Stale ballot, transient error, or a restart interrupted the step: download again.
    Rollback,
    /// Forget a finished load.
    Clear,
}

impl BulkLoadEvent {
    /// Every event, for exhaustive tests.
    pub const ALL: [BulkLoadEvent; 13] = [
        BulkLoadEvent::Start,
        BulkLoadEvent::DownloadsComplete,
        BulkLoadEvent::DownloadFailed,
        BulkLoadEvent::IngestStart,
        BulkLoadEvent::IngestSucceeded,
        BulkLoadEvent::IngestFailed,
        BulkLoadEvent::Pause,
        BulkLoadEvent::PauseComplete,
        BulkLoadEvent::Restart,
        BulkLoadEvent::Cancel,
        BulkLoadEvent::ForceCancel,
        BulkLoadEvent::Rollback,
        BulkLoadEvent::Clear,
    ];
}

/// An event that does not apply in the current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulk load event {event:?} is not allowed in status {from}")]
pub struct TransitionRejected {
    /// The status the partition was in.
    pub from: BulkLoadStatus,
    /// The event that was refused.
    pub event: BulkLoadEvent,
}

/// The next status after `event` in status `from`, or why not. Pure: no side effects.
pub fn transition(
    from: BulkLoadStatus,
    event: BulkLoadEvent,
) -> Result<BulkLoadStatus, TransitionRejected> {
    use BulkLoadEvent as E;
    use BulkLoadStatus as S;
    let next = match (from, event) {
        (S::Invalid | S::Succeed | S::Failed | S::Canceled, E::Start) => S::Downloading,
        (S::Downloading, E::DownloadsComplete) => S::Downloaded,
        (S::Downloading, E::DownloadFailed) => S::Failed,
        (S::Downloaded, E::IngestStart) => S::Ingesting,
        (S::Ingesting, E::IngestSucceeded) => S::Succeed,
        (S::Ingesting, E::IngestFailed) => S::Failed,
        (S::Downloading, E::Pause) => S::Pausing,
        (S::Pausing, E::PauseComplete) => S::Paused,
        (S::Paused, E::Restart) => S::Downloading,
        (S::Downloading | S::Pausing | S::Paused, E::Cancel) => S::Canceled,
        (_, E::ForceCancel) => S::Canceled,
        (S::Downloading | S::Downloaded | S::Ingesting, E::Rollback) => S::Downloading,
        (S::Invalid | S::Succeed | S::Failed | S::Canceled, E::Clear) => S::Invalid,
        _ => return Err(TransitionRejected { from, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use BulkLoadEvent as E;
    use BulkLoadStatus as S;

    /// The whole table, written out independently of `transition`.
    fn expected(from: S, event: E) -> Option<S> {
        let terminal = [S::Invalid, S::Succeed, S::Failed, S::Canceled];
        match event {
            E::Start => terminal.contains(&from).then_some(S::Downloading),
            E::DownloadsComplete => (from == S::Downloading).then_some(S::Downloaded),
            E::DownloadFailed => (from == S::Downloading).then_some(S::Failed),
            E::IngestStart => (from == S::Downloaded).then_some(S::Ingesting),
            E::IngestSucceeded => (from == S::Ingesting).then_some(S::Succeed),
            E::IngestFailed => (from == S::Ingesting).then_some(S::Failed),
            E::Pause => (from == S::Downloading).then_some(S::Pausing),
            E::PauseComplete => (from == S::Pausing).then_some(S::Paused),
            E::Restart => (from == S::Paused).then_some(S::Downloading),
            E::Cancel => [S::Downloading, S::Pausing, S::Paused]
                .contains(&from)
                .then_some(S::Canceled),
            E::ForceCancel => Some(S::Canceled),
            E::Rollback => [S::Downloading, S::Downloaded, S::Ingesting]
                .contains(&from)
                .then_some(S::Downloading),
            E::Clear => terminal.contains(&from).then_some(S::Invalid),
        }
    }

    #[test]
    fn every_status_times_every_event() {
        let mut allowed = 0;
        for from in S::ALL {
            for event in E::ALL {
                let got = transition(from, event);
                match expected(from, event) {
                    Some(to) => {
                        assert_eq!(got, Ok(to), "{from} x {event:?}");
                        allowed += 1;
                    }
                    None => assert_eq!(got, Err(TransitionRejected { from, event })),
                }
            }
        }
        assert_eq!(allowed, 31);
    }

    #[test]
    fn every_status_can_reach_canceled_and_then_start_again() {
        for from in S::ALL {
            let canceled = transition(from, E::ForceCancel).unwrap();
            assert!(canceled.is_terminal());
            assert_eq!(transition(canceled, E::Start), Ok(S::Downloading));
        }
    }

    #[test]
    fn statuses_serialize_as_pegasus_names() {
        let text = serde_json::to_string(&S::Succeed).unwrap();
        assert_eq!(text, "\"SUCCEED\"");
        assert_eq!(S::Paused.to_string(), "PAUSED");
    }
}

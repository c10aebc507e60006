//! The duplication status machine, as a pure function over (status, event).
//!
//! ```text
//! INIT --Start--> PREPARE --CheckpointReady--> APP --CheckpointCopied--> LOG <--Pause/Start--> PAUSE
//!   any (except REMOVED) --Remove--> REMOVED
//! ```
//! Restarting from disk never needs an event: the duplicator resumes the persisted status. A
//! rejected event is a typed value, never a panic, so an operator command in the wrong state is
//! an error the caller reports.

pub use siltdb_client::duplication::Status;

/// What can happen to a duplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Operator (or the duplicator after add) starts it: INIT → PREPARE, PAUSE → LOG.
    Start,
    /// A checkpoint at or above the minimum checkpoint decree exists: PREPARE → APP.
    CheckpointReady,
    /// The follower holds the checkpoint: APP → LOG.
    CheckpointCopied,
    /// Operator pauses shipping: LOG → PAUSE.
    Pause,
    /// Operator removes it: any live status → REMOVED.
    Remove,
}

impl Event {
    /// Every event, for exhaustive tests.
    pub const ALL: [Event; 5] = [
        Event::Start,
        Event::CheckpointReady,
        Event::CheckpointCopied,
        Event::Pause,
        Event::Remove,
    ];
}

/// An event the current status does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("duplication in {from} does not accept {event:?}")]
pub struct Rejected {
    /// The status the event arrived in.
    pub from: Status,
    /// The refused event.
    pub event: Event,
}

/// The next status after `event` in `from`, or why not. Pure and total.
pub fn transition(from: Status, event: Event) -> Result<Status, Rejected> {
    use Event as E;
    use Status as S;
    let next = match (from, event) {
        (S::Removed, _) => None,
        (_, E::Remove) => Some(S::Removed),
        (S::Init, E::Start) => Some(S::Prepare),
        (S::Pause, E::Start) => Some(S::Log),
        (S::Prepare, E::CheckpointReady) => Some(S::App),
        (S::App, E::CheckpointCopied) => Some(S::Log),
        (S::Log, E::Pause) => Some(S::Pause),
        _ => None,
    };
    next.ok_or(Rejected { from, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_times_every_event() {
        use Event as E;
        use Status as S;
        let allowed = [
            (S::Init, E::Start, S::Prepare),
            (S::Pause, E::Start, S::Log),
            (S::Prepare, E::CheckpointReady, S::App),
            (S::App, E::CheckpointCopied, S::Log),
            (S::Log, E::Pause, S::Pause),
            (S::Init, E::Remove, S::Removed),
            (S::Prepare, E::Remove, S::Removed),
            (S::App, E::Remove, S::Removed),
            (S::Log, E::Remove, S::Removed),
            (S::Pause, E::Remove, S::Removed),
        ];
        let mut accepted = 0;
        for from in Status::ALL {
            for event in Event::ALL {
                let want = allowed
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                let got = transition(from, event);
                match want {
                    Some(to) => {
                        assert_eq!(got, Ok(to), "{from} × {event:?}");
                        accepted += 1;
                    }
                    None => assert_eq!(got, Err(Rejected { from, event }), "{from} × {event:?}"),
                }
            }
        }
        assert_eq!(accepted, allowed.len());
    }

    #[test]
    fn removed_is_terminal_and_only_removed_is_not_live() {
        for e in Event::ALL {
            assert!(transition(Status::Removed, e).is_err());
        }
        for s in Status::ALL {
            assert_eq!(s.is_live(), s != Status::Removed);
        }
    }
}

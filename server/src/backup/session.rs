//! The server side of a cold backup: checkpoint sessions. `Prepare` on a partition's leader
//! passes a read barrier (so every write acknowledged before it is applied), checkpoints,
//! and stages the newest checkpoint under `<data dir>/backup_sessions/<session>/` (hard links
//! for the immutable `.sst` files, copies of the rest): the staged files stay readable however
//! the replica's own checkpoints are collected meanwhile. `Read` serves bounded chunks of a
//! staged file; `Release` removes the session. Sessions idle for
//! [`MAX_BACKUP_SESSION_IDLE`] are removed at the next request, and all of them at start.
//!
//! The server writes only under its own data directory and reads only the files it staged:
//! the client names a session and a file name from the session's list, never a path.

use crate::error::ServerError;
use crate::node::Node;
use crate::proto::ClientResponse;
use parking_lot::Mutex;
use siltdb_client::backup::{BackupReply, BackupRequest, StagedFile, MAX_BACKUP_CHUNK_BYTES};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Directory of the staged checkpoints, inside the data directory.
pub const BACKUP_SESSIONS_DIR: &str = "backup_sessions";
/// A session not used for this long is removed.
pub const MAX_BACKUP_SESSION_IDLE: Duration = Duration::from_secs(600);
/// Most sessions of one node at once; more are refused until some are released.
pub const MAX_BACKUP_SESSIONS: usize = 64;
/// Most files in one staged checkpoint.
pub const MAX_STAGED_FILES: usize = 100_000;

struct Session {
    dir: PathBuf,
    files: HashMap<String, u64>,
    last_used: Instant,
}

/// The backup sessions of one node.
pub struct BackupSessions {
    dir: PathBuf,
    next: AtomicU64,
    sessions: Mutex<HashMap<u64, Session>>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(format!("{what}: {e}"))
}

impl BackupSessions {
    /// The sessions of a node with data directory `data_dir`; what a previous run staged is
    /// removed (its sessions died with it).
    pub fn open(data_dir: &Path) -> crate::error::Result<BackupSessions> {
        let dir = data_dir.join(BACKUP_SESSIONS_DIR);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| crate::error::Error::io(&dir, e))?;
        }
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        Ok(BackupSessions {
            dir,
            // Ids from the clock: a session id of a previous run is never reused.
            next: AtomicU64::new(start),
            sessions: Mutex::default(),
        })
    }

    /// Answers one backup request on `node`.
    pub async fn handle(
        &self,
        node: &Node,
        req: BackupRequest,
    ) -> Result<ClientResponse, ServerError> {
        self.expire().await;
        let reply = match req {
            BackupRequest::Prepare { table, partition } => {
                self.prepare(node, &table, partition).await?
            }
            BackupRequest::Read {
                session,
                file,
                offset,
                len_max,
            } => self.read(session, &file, offset, len_max).await?,
            BackupRequest::Release { session } => {
                let s = self.sessions.lock().remove(&session);
                if let Some(s) = s {
                    remove_dir(s.dir).await?;
                }
                BackupReply::Released
            }
        };
        Ok(ClientResponse::Backup(reply))
    }

    async fn expire(&self) {
        let idle: Vec<Session> = {
            let mut s = self.sessions.lock();
            let ids: Vec<u64> = s
                .iter()
                .filter(|(_, v)| v.last_used.elapsed() > MAX_BACKUP_SESSION_IDLE)
                .map(|(k, _)| *k)
                .collect();
            ids.iter().filter_map(|id| s.remove(id)).collect()
        };
        for s in idle {
            tracing::info!(dir = %s.dir.display(), "removing an idle backup session");
            if let Err(e) = remove_dir(s.dir).await {
                tracing::warn!(error = %e, "removing an idle backup session");
            }
        }
    }

    async fn prepare(
        &self,
        node: &Node,
        table: &str,
        partition: u32,
    ) -> Result<BackupReply, ServerError> {
        let (layout, r) = node.replica(table, partition)?;
        let me = node.options().node_id;
        if r.leader() != Some(me) {
            let leader = r.leader();
            return Err(node.map_error(&layout, siltdb_replica::Error::NotLeader { leader }));
        }
        if self.sessions.lock().len() >= MAX_BACKUP_SESSIONS {
            return Err(ServerError::Unavailable(format!(
                "{MAX_BACKUP_SESSIONS} backup sessions open; release some first"
            )));
        }
        // The barrier: everything acknowledged before this request is applied here.
        node.bounded("backup barrier", &layout, r.ensure_linearizable())
            .await?;
        node.bounded("backup checkpoint", &layout, r.checkpoint())
            .await?;
        let (meta, handle) = r.state_machine().checkpoints().newest().ok_or_else(|| {
            ServerError::Unavailable(format!(
                "{}: no checkpoint to back up",
                layout.gpid(partition)
            ))
        })?;
        let log_id = meta.last_log_id.ok_or_else(|| {
            ServerError::Unavailable(format!(
                "{}: the checkpoint is empty",
                layout.gpid(partition)
            ))
        })?;
        let session = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(session.to_string());
        let src = handle.dir.clone();
        let staged = dir.clone();
        let files = tokio::task::spawn_blocking(move || {
            // The pin (`handle`) keeps the checkpoint until the staged links exist.
            let _pin = handle;
            stage(&src, &staged)
        })
        .await
        .map_err(|e| internal("staging task", e))??;
        self.sessions.lock().insert(
            session,
            Session {
                dir,
                files: files
                    .iter()
                    .map(|f| (f.name.clone(), f.size_bytes))
                    .collect(),
                last_used: Instant::now(),
            },
        );
        tracing::info!(
            table,
            partition,
            session,
            decree = log_id.index,
            "backup checkpoint staged"
        );
        Ok(BackupReply::Prepared {
            session,
            node_id: me,
            addr: node.options().addr.clone(),
            decree: log_id.index,
            term: log_id.leader_id.term,
            files,
        })
    }

    async fn read(
        &self,
        session: u64,
        file: &str,
        offset: u64,
        len_max: u32,
    ) -> Result<BackupReply, ServerError> {
        let path = {
            let mut s = self.sessions.lock();
            let s = s.get_mut(&session).ok_or_else(|| {
                ServerError::InvalidArgument(format!("no backup session {session}"))
            })?;
            s.last_used = Instant::now();
            // Only names of the session's own list: never a path the client made up.
            if !s.files.contains_key(file) {
                return Err(ServerError::InvalidArgument(format!(
                    "backup session {session} has no file {file:?}"
                )));
            }
            s.dir.join(file)
        };
        let len = len_max.clamp(1, MAX_BACKUP_CHUNK_BYTES);
        let chunk = tokio::task::spawn_blocking(move || read_chunk(&path, offset, len))
            .await
            .map_err(|e| internal("read task", e))??;
        Ok(BackupReply::Chunk(chunk))
    }

    /// Open sessions (for tests and stats).
    pub fn open_sessions(&self) -> usize {
        self.sessions.lock().len()
    }
}

/// Copies checkpoint `src` into the new directory `dst` and lists its files.
fn stage(src: &Path, dst: &Path) -> Result<Vec<StagedFile>, ServerError> {
    let fs = siltdb::fs::StdFs;
    siltdb_replica::checkpoint::copy_db_dir(&fs, src, dst)
        .map_err(|e| internal("staging the checkpoint", e))?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dst).map_err(|e| internal(&dst.display().to_string(), e))? {
        let entry = entry.map_err(|e| internal(&dst.display().to_string(), e))?;
        let meta = entry
            .metadata()
            .map_err(|e| internal(&entry.path().display().to_string(), e))?;
        let Ok(name) = entry.file_name().into_string() else {
            return Err(ServerError::Internal(format!(
                "{}: a file name that is not UTF-8",
                entry.path().display()
            )));
        };
        if !meta.is_file() {
            return Err(ServerError::Internal(format!(
                "{}: a checkpoint holds only files",
                entry.path().display()
            )));
        }
        files.push(StagedFile {
            name,
            size_bytes: meta.len(),
        });
        if files.len() > MAX_STAGED_FILES {
            return Err(ServerError::Internal(format!(
                "checkpoint {} holds more than {MAX_STAGED_FILES} files",
                src.display()
            )));
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn read_chunk(path: &Path, offset: u64, len: u32) -> Result<Vec<u8>, ServerError> {
    let what = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| internal(&what, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| internal(&what, e))?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(u64::from(len))
        .read_to_end(&mut buf)
        .map_err(|e| internal(&what, e))?;
    Ok(buf)
}

async fn remove_dir(dir: PathBuf) -> Result<(), ServerError> {
    tokio::task::spawn_blocking(move || {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| internal(&dir.display().to_string(), e))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| internal("remove task", e))?
}

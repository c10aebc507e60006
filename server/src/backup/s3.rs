//! [`S3Target`]: backups in an S3-compatible object store (`s3://bucket/optional/prefix`),
//! on the `object_store` crate.
//!
//! Objects are keyed `<prefix>/<backup id>/<partition>/<file>` and
//! `<prefix>/<backup id>/BACKUP_MANIFEST`, with the same path rule as a directory (every
//! component a plain name, [`super::target`]). Configuration comes from the standard AWS
//! environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP=true` for
//! a plain-http endpoint, ...: `AmazonS3Builder::from_env`).
//!
//! The [`BackupTarget`] trait is synchronous and its callers run it on blocking threads
//! (`spawn_blocking`, or no runtime at all); `object_store` is asynchronous. Each target owns a
//! small dedicated tokio runtime (one worker thread, which drives the HTTP connections) and
//! every trait method `block_on`s that runtime from the calling thread. From a task of a
//! multi-threaded runtime the wait goes through `block_in_place`; never call a method from a
//! current-thread runtime's task: tokio refuses (panics on) a `block_on` there. The runtime is
//! shut down in the background when the target goes, so dropping one in async code is fine.
//!
//! Writes: a [`BackupTarget::create`] object is buffered up to [`S3_PART_BYTES`]; a smaller
//! one is a single PUT at `finish`, a larger one a multipart upload (up to
//! [`MAX_S3_PARTS_IN_FLIGHT`] parts uploading while the caller goes on), completed at `finish`:
//! either way nothing is visible under the key before `finish`. A writer dropped unfinished
//! aborts its multipart upload in the background (best effort: a bucket lifecycle rule for
//! incomplete multipart uploads catches what a crash leaves).

use super::target::{invalid, path_components, BackupTarget, BackupWriter, S3_URL_SCHEME};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

/// Size of one multipart part (S3 wants at least 5 MiB but for the last); an object smaller
/// than this is one PUT.
pub const S3_PART_BYTES: usize = 8 << 20;
/// Parts of one object uploading at once (each holds its part in memory).
pub const MAX_S3_PARTS_IN_FLIGHT: usize = 2;
/// Retries of one request (connection errors, 5xx, throttling) before it fails.
pub const MAX_S3_RETRIES: usize = 5;
/// Bound on one request with its retries.
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variables that name a source of credentials; without any of them a target is
/// refused (`object_store` would otherwise ask an instance-metadata endpoint and wait).
const CREDENTIAL_ENV: &[&[&str]] = &[
    &["AWS_ACCESS_KEY_ID"],
    &["AWS_SECRET_ACCESS_KEY"],
    &["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"],
    &["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"],
    &[
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ],
    // Instance-profile credentials: named explicitly, e.g. http://169.254.169.254.
    &["AWS_METADATA_ENDPOINT"],
];

/// Whether the environment (`get`) names a source of credentials ([`CREDENTIAL_ENV`], or
/// `AWS_SKIP_SIGNATURE=true` for anonymous access).
fn credentials_configured(get: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| get(k).is_some_and(|v| !v.is_empty());
    CREDENTIAL_ENV.iter().any(|all| all.iter().all(|k| set(k)))
        || get("AWS_SKIP_SIGNATURE").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The runtime that runs a target's requests (module docs).
struct Io {
    rt: Option<tokio::runtime::Runtime>,
}

impl Io {
    fn new() -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("silt-s3")
            .enable_all()
            .build()?;
        Ok(Self { rt: Some(rt) })
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `f` on the target's runtime and waits for it. On a worker thread of a
    /// multi-threaded tokio runtime the wait goes through `block_in_place`, which hands the
    /// thread's other tasks to the other workers first (and leaves the runtime's context, so
    /// the nested `block_on` is allowed); a current-thread runtime cannot do that, so calls
    /// from its tasks still panic (tokio's own message).
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.rt().block_on(f))
            }
            _ => self.rt().block_on(f),
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Not `Runtime::drop`, which blocks and panics inside async code.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Backups in a bucket of an S3-compatible store, under a key prefix (module docs).
pub struct S3Target {
    io: Arc<Io>,
    store: Arc<AmazonS3>,
    bucket: String,
    /// `/`-separated plain names, or empty (the bucket's top).
    prefix: String,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("location", &self.describe())
            .finish()
    }
}

fn map_err(what: &str, e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{what}: {e}"))
}

impl S3Target {
    /// The target `s3://bucket/prefix` configured from the standard AWS environment variables
    /// (module docs). Refused when no variable names credentials. Makes no request.
    pub fn from_env(bucket: &str, prefix: &str) -> io::Result<Self> {
        if !credentials_configured(|k| std::env::var(k).ok()) {
            return Err(invalid(format!(
                "{}: no AWS credentials in the environment: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, the \
                 AWS_CONTAINER_CREDENTIALS_* variables, or AWS_METADATA_ENDPOINT for instance \
                 credentials)",
                describe(bucket, prefix)
            )));
        }
        Self::from_builder(AmazonS3Builder::from_env(), bucket, prefix)
    }

    /// The target `s3://bucket/prefix` with the store configured by `builder` (its bucket
    /// replaced by `bucket`). Makes no request.
    pub fn from_builder(builder: AmazonS3Builder, bucket: &str, prefix: &str) -> io::Result<Self> {
        let prefix = prefix.trim_matches('/');
        if bucket.is_empty() {
            return Err(invalid(format!("{S3_URL_SCHEME}/{prefix}: no bucket")));
        }
        if !prefix.is_empty() {
            path_components(prefix)?;
        }
        let io = Io::new()?;
        let retry = RetryConfig {
            max_retries: MAX_S3_RETRIES,
            retry_timeout: S3_RETRY_TIMEOUT,
            ..RetryConfig::default()
        };
        let store = {
            // The HTTP client is made inside the runtime that will drive it.
            let _enter = io.rt().enter();
            builder
                .with_bucket_name(bucket)
                .with_retry(retry)
                .build()
                .map_err(|e| {
                    invalid(format!(
                        "{}: configuring the S3 client: {e}",
                        describe(bucket, prefix)
                    ))
                })?
        };
        Ok(Self {
            io: Arc::new(io),
            store: Arc::new(store),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The same store and bucket under another prefix (sharing this target's client).
    pub fn with_prefix(&self, prefix: &str) -> io::Result<Self> {
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            path_components(prefix)?;
        }
        Ok(Self {
            io: Arc::clone(&self.io),
            store: Arc::clone(&self.store),
            bucket: self.bucket.clone(),
            prefix: prefix.to_string(),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (empty: the bucket's top).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// One listing of the prefix: fails (naming the bucket) when the bucket is missing or the
    /// credentials are refused, before anything is written.
    pub fn check_access(&self) -> io::Result<()> {
        self.list().map(drop)
    }

    /// The full key of the relative `path`, refused unless every component is plain.
    fn key(&self, path: &str) -> io::Result<(ObjectPath, String)> {
        path_components(path)?;
        let full = if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        };
        let what = format!("{S3_URL_SCHEME}{}/{full}", self.bucket);
        let p = ObjectPath::parse(&full).map_err(|e| invalid(format!("{what}: {e}")))?;
        Ok((p, what))
    }
}

fn describe(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("{S3_URL_SCHEME}{bucket}")
    } else {
        format!("{S3_URL_SCHEME}{bucket}/{prefix}")
    }
}

type PartTask = tokio::task::JoinHandle<object_store::Result<()>>;

/// An object being written (module docs: nothing is visible before `finish`).
struct S3Writer {
    io: Arc<Io>,
    store: Arc<AmazonS3>,
    key: ObjectPath,
    what: String,
    buf: Vec<u8>,
    /// Started with the first full part.
    upload: Option<Box<dyn MultipartUpload>>,
    parts: VecDeque<PartTask>,
}

impl S3Writer {
    fn wait_part(&self, part: PartTask) -> io::Result<()> {
        match self.io.block_on(part) {
            Ok(r) => r.map_err(|e| map_err(&self.what, e)),
            Err(e) => Err(io::Error::other(format!(
                "{}: part upload task: {e}",
                self.what
            ))),
        }
    }

    /// Hands the buffer to the multipart upload as its next part.
    fn send_part(&mut self) -> io::Result<()> {
        if self.upload.is_none() {
            let up = self
                .io
                .block_on(self.store.put_multipart(&self.key))
                .map_err(|e| map_err(&self.what, e))?;
            self.upload = Some(up);
        }
        while self.parts.len() >= MAX_S3_PARTS_IN_FLIGHT {
            let oldest = self.parts.pop_front().expect("parts in flight");
            self.wait_part(oldest)?;
        }
        let data = PutPayload::from(std::mem::take(&mut self.buf));
        let up = self.upload.as_mut().expect("started above");
        let task = self.io.rt().spawn(up.put_part(data));
        self.parts.push_back(task);
        Ok(())
    }

    /// Sends the last part, waits for every part, completes the upload.
    fn complete_upload(&mut self, up: &mut dyn MultipartUpload) -> io::Result<()> {
        if !self.buf.is_empty() {
            let data = PutPayload::from(std::mem::take(&mut self.buf));
            self.parts.push_back(self.io.rt().spawn(up.put_part(data)));
        }
        while let Some(part) = self.parts.pop_front() {
            self.wait_part(part)?;
        }
        self.io
            .block_on(up.complete())
            .map(drop)
            .map_err(|e| map_err(&self.what, e))
    }

    /// Makes the object visible: one PUT, or the multipart upload completed.
    fn complete(&mut self) -> io::Result<()> {
        let Some(mut up) = self.upload.take() else {
            let data = PutPayload::from(std::mem::take(&mut self.buf));
            return self
                .io
                .block_on(self.store.put(&self.key, data))
                .map(drop)
                .map_err(|e| map_err(&self.what, e));
        };
        // From here on `Drop` no longer sees the upload: abort it here on failure.
        if let Err(err) = self.complete_upload(up.as_mut()) {
            if let Err(e) = self.io.block_on(up.abort()) {
                tracing::warn!(object = %self.what, error = %e, "aborting a multipart upload");
            }
            return Err(err);
        }
        Ok(())
    }
}

impl Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= S3_PART_BYTES {
            self.send_part()?;
        }
        Ok(buf.len())
    }

    /// Nothing to do: an object is written at `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BackupWriter for S3Writer {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.complete()
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        let Some(mut up) = self.upload.take() else {
            return;
        };
        // Unfinished (an error, or the caller gave up): abort in the background, as drop
        // may run inside async code, where blocking is not allowed.
        let parts = std::mem::take(&mut self.parts);
        let what = self.what.clone();
        self.io.rt().spawn(async move {
            for p in parts {
                let _ = p.await;
            }
            if let Err(e) = up.abort().await {
                tracing::warn!(object = %what, error = %e, "aborting a multipart upload");
            }
        });
    }
}

/// A streamed read of one object.
struct S3Reader {
    io: Arc<Io>,
    what: String,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.io.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(map_err(&self.what, e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl BackupTarget for S3Target {
    fn describe(&self) -> String {
        describe(&self.bucket, &self.prefix)
    }

    /// The last components of the common prefixes (and of any object) right under the
    /// prefix.
    fn list(&self) -> io::Result<Vec<String>> {
        let prefix = (!self.prefix.is_empty())
            .then(|| ObjectPath::parse(&self.prefix))
            .transpose()
            .map_err(|e| invalid(format!("{}: {e}", self.describe())))?;
        let r = self
            .io
            .block_on(self.store.list_with_delimiter(prefix.as_ref()))
            .map_err(|e| map_err(&format!("listing {}", self.describe()), e))?;
        let names = r
            .common_prefixes
            .iter()
            .chain(r.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        Ok(names)
    }

    fn create(&self, path: &str) -> io::Result<Box<dyn BackupWriter>> {
        let (key, what) = self.key(path)?;
        Ok(Box::new(S3Writer {
            io: Arc::clone(&self.io),
            store: Arc::clone(&self.store),
            key,
            what,
            buf: Vec::new(),
            upload: None,
            parts: VecDeque::new(),
        }))
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn Read + Send>> {
        let (key, what) = self.key(path)?;
        let r = self
            .io
            .block_on(self.store.get(&key))
            .map_err(|e| map_err(&what, e))?;
        Ok(Box::new(S3Reader {
            io: Arc::clone(&self.io),
            what,
            stream: r.into_stream(),
            chunk: Bytes::new(),
        }))
    }

    fn read_small(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        let (key, what) = self.key(path)?;
        self.io.block_on(async {
            let r = match self.store.get(&key).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(map_err(&what, e)),
            };
            let too_large = || invalid(format!("{what}: larger than {max_bytes} bytes"));
            if r.meta.size > max_bytes {
                return Err(too_large());
            }
            let bytes = r.bytes().await.map_err(|e| map_err(&what, e))?;
            if bytes.len() as u64 > max_bytes {
                return Err(too_large());
            }
            Ok(Some(bytes.to_vec()))
        })
    }

    /// One PUT: S3 makes an object visible whole or not at all.
    fn put_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let (key, what) = self.key(path)?;
        self.io
            .block_on(self.store.put(&key, PutPayload::from(bytes.to_vec())))
            .map(drop)
            .map_err(|e| map_err(&what, e))
    }

    /// Nothing to do: an object store has no directory entries to make durable. Every object
    /// is durable once its PUT (or multipart completion) was acknowledged, which `finish` waited
    /// for, and S3 listings are strongly consistent, so everything written under `id` is
    /// already listed when the manifest goes in.
    fn seal(&self, id: &str) -> io::Result<()> {
        path_components(id).map(drop)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let (key, what) = self.key(path)?;
        match self.io.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(&what, e)),
        }
    }

    /// Deletes every object under `<prefix>/<id>/` (a listing, then batched deletes).
    fn remove_all(&self, id: &str) -> io::Result<()> {
        let (key, what) = self.key(id)?;
        self.io.block_on(async {
            let locations = self.store.list(Some(&key)).map_ok(|m| m.location).boxed();
            let mut deleted = self.store.delete_stream(locations);
            while let Some(r) = deleted.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(map_err(&format!("removing {what}/"), e)),
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn credentials_must_be_named_in_the_environment() {
        let env = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            credentials_configured(move |k| m.get(k).cloned())
        };
        assert!(!env(&[]));
        assert!(!env(&[
            ("AWS_REGION", "x"),
            ("AWS_ENDPOINT_URL", "http://h")
        ]));
        assert!(!env(&[("AWS_ACCESS_KEY_ID", "")]));
        assert!(env(&[
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s")
        ]));
        // Half a key pair passes here: the client's builder then names the missing half.
        assert!(env(&[("AWS_ACCESS_KEY_ID", "a")]));
        assert!(!env(&[("AWS_ROLE_ARN", "r")]));
        assert!(env(&[
            ("AWS_ROLE_ARN", "r"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "f")
        ]));
        assert!(env(&[("AWS_METADATA_ENDPOINT", "http://169.254.169.254")]));
        assert!(env(&[("AWS_SKIP_SIGNATURE", "true")]));
        assert!(!env(&[("AWS_SKIP_SIGNATURE", "false")]));
    }

    #[test]
    fn keys_follow_the_directory_path_rule_and_name_the_bucket() {
        let b = AmazonS3Builder::new()
            .with_region("us-east-1")
            .with_access_key_id("k")
            .with_secret_access_key("s");
        let t = S3Target::from_builder(b.clone(), "bk", "a/b/").unwrap();
        assert_eq!(t.describe(), "s3://bk/a/b");
        let (k, what) = t.key("backup-1/0/f.sst").unwrap();
        assert_eq!(k.as_ref(), "a/b/backup-1/0/f.sst");
        assert_eq!(what, "s3://bk/a/b/backup-1/0/f.sst");
        for bad in ["../x", "a/../b", "/etc/passwd", "a//b", ""] {
            assert!(t.create(bad).is_err(), "{bad}");
            assert!(t.open(bad).is_err(), "{bad}");
            assert!(t.put_atomic(bad, b"x").is_err(), "{bad}");
            assert!(t.remove_all(bad).is_err(), "{bad}");
        }
        let top = t.with_prefix("").unwrap();
        assert_eq!(top.describe(), "s3://bk");
        assert_eq!(top.key("x/y").unwrap().0.as_ref(), "x/y");
        assert!(S3Target::from_builder(b.clone(), "", "p").is_err());
        assert!(S3Target::from_builder(b, "bk", "a/../b").is_err());
        // Dropped inside async code: no panic (the runtime shuts down in the background).
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async move { drop(t) });
    }
}

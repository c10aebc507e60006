//! A cluster of `silt-server` processes on 127.0.0.1 for the integration tests: started from
//! the built binary with port 0 (the bound address is read from `--addr-file`), restarted on
//! the same address, killed with SIGKILL or stopped with SIGTERM. Every wait has a deadline;
//! dropping the cluster kills whatever still runs.
#![allow(dead_code)]

pub mod backup;
pub mod moto;

use siltdb_server::proto::{ClientRequest, ClientResponse, NodeStats};
use siltdb_server::{Client, ClientOptions, NodeInfo, TableLayout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TABLE: &str = "t";
pub const PARTITIONS: u32 = 8;

/// One server process.
pub struct Proc {
    pub id: u64,
    pub dir: PathBuf,
    pub addr: String,
    child: Option<Child>,
    starts: u32,
    /// Flags added to every start (they override the defaults above them).
    extra_args: Vec<String>,
}

pub struct Cluster {
    _root: tempfile::TempDir,
    pub procs: Vec<Proc>,
    pub client: Arc<Client>,
    pub layout: TableLayout,
}

impl Proc {
    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

fn spawn(p: &mut Proc, listen: &str) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.dir.join(format!("server.{}.log", p.starts)))?;
    p.starts += 1;
    let _ = std::fs::remove_file(p.dir.join("addr"));
    Command::new(env!("CARGO_BIN_EXE_silt-server"))
        .args(["--node-id", &p.id.to_string(), "--listen", listen])
        .arg("--data-dir")
        .arg(p.dir.join("data"))
        .arg("--addr-file")
        .arg(p.dir.join("addr"))
        .args(["--heartbeat-ms", "200", "--election-min-ms", "1200"])
        .args(["--election-max-ms", "2400", "--request-timeout-ms", "3000"])
        .args([
            "--memtable-size-bytes",
            "1048576",
            "--checkpoint-interval-ms",
            "0",
        ])
        .arg("--allow-fault-injection")
        // `{dir}` in a flag stands for the node's own directory.
        .args(
            p.extra_args
                .iter()
                .map(|a| a.replace("{dir}", &p.dir.to_string_lossy())),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// Starts `p` listening on `listen` and waits for its address file. On a fixed port (a
/// restart) a bind can fail while the old socket lingers: retried until the deadline.
fn start(p: &mut Proc, listen: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut child = spawn(p, listen).expect("spawn silt-server");
        loop {
            if let Ok(addr) = std::fs::read_to_string(p.dir.join("addr")) {
                p.addr = addr;
                p.child = Some(child);
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = p.dir.join(format!("server.{}.log", p.starts - 1));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                // Only a bind failure on a fixed port is worth retrying.
                assert!(
                    text.contains("in use"),
                    "node {} exited at start ({status}):\n{text}",
                    p.id
                );
                eprintln!("node {} exited at start ({status}); retrying", p.id);
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {} did not start in time", p.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(Instant::now() < deadline, "node {} could not restart", p.id);
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Cluster {
    /// Starts `n` nodes and creates table [`TABLE`] with [`PARTITIONS`] × `n` replicas.
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, &[]).await
    }

    /// [`Cluster::start`] with extra server flags.
    pub async fn start_with(n: u64, extra_args: &[&str]) -> Cluster {
        Self::start_named(n, TABLE, extra_args).await
    }

    /// Starts `n` nodes and creates table `table` with [`PARTITIONS`] × `n` replicas.
    pub async fn start_named(n: u64, table: &str, extra_args: &[&str]) -> Cluster {
        let c = Self::start_bare_named(n, table, extra_args);
        c.client
            .create_table(&c.layout)
            .await
            .expect("create table");
        c
    }

    /// Starts `n` nodes hosting nothing; `layout` is the table [`Cluster::start`] would create.
    pub fn start_bare(n: u64, extra_args: &[&str]) -> Cluster {
        Self::start_bare_named(n, TABLE, extra_args)
    }

    /// [`Cluster::start_bare`] where `layout` names table `table`.
    pub fn start_bare_named(n: u64, table: &str, extra_args: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut procs = Vec::new();
        for id in 1..=n {
            let dir = root.path().join(format!("n{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut p = Proc {
                id,
                dir,
                addr: String::new(),
                child: None,
                starts: 0,
                extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            };
            start(&mut p, "127.0.0.1:0");
            procs.push(p);
        }
        let nodes: Vec<NodeInfo> = procs
            .iter()
            .map(|p| NodeInfo {
                id: p.id,
                addr: p.addr.clone(),
            })
            .collect();
        let layout = TableLayout::new(table, 1, PARTITIONS, n as u32, nodes);
        let mut opts = ClientOptions::new(procs.iter().map(|p| p.addr.clone()).collect());
        opts.deadline = Duration::from_secs(60);
        opts.rpc_timeout = Duration::from_secs(8);
        let client = Arc::new(Client::new(opts));
        Cluster {
            _root: root,
            procs,
            client,
            layout,
        }
    }

    /// Starts one more node, hosting nothing yet (a node to move replicas onto).
    pub fn start_extra(&mut self, id: u64) -> NodeInfo {
        assert!(self.procs.iter().all(|p| p.id != id), "node {id} exists");
        let dir = self._root.path().join(format!("n{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = Proc {
            id,
            dir,
            addr: String::new(),
            child: None,
            starts: 0,
            extra_args: self.procs[0].extra_args.clone(),
        };
        start(&mut p, "127.0.0.1:0");
        let info = NodeInfo {
            id,
            addr: p.addr.clone(),
        };
        self.procs.push(p);
        info
    }

    /// `silt-admin init-meta` with every node started so far as a meta replica.
    pub fn init_meta(&self) {
        let nodes: Vec<String> = self
            .procs
            .iter()
            .map(|p| format!("{}={}", p.id, p.addr))
            .collect();
        let mut args = vec!["init-meta"];
        for n in &nodes {
            args.extend(["--node", n.as_str()]);
        }
        let (ok, stdout, stderr) = silt_admin(&self.procs[0].addr, &args);
        assert!(ok, "init-meta failed: {stdout}{stderr}");
    }

    /// The process id of running node `id`.
    pub fn pid(&self, id: u64) -> u32 {
        self.proc(id).child.as_ref().expect("node running").id()
    }

    pub fn addr(&self, id: u64) -> String {
        self.proc(id).addr.clone()
    }

    pub fn proc(&self, id: u64) -> &Proc {
        self.procs.iter().find(|p| p.id == id).expect("node id")
    }

    fn proc_mut(&mut self, id: u64) -> &mut Proc {
        self.procs.iter_mut().find(|p| p.id == id).expect("node id")
    }

    /// SIGKILL.
    pub fn kill9(&mut self, id: u64) {
        let p = self.proc_mut(id);
        let mut c = p.child.take().expect("node running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns whether the exit code was 0.
    pub fn terminate(&mut self, id: u64) -> bool {
        let p = self.proc_mut(id);
        let mut c = p.child.take().expect("node running");
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("node {id} did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts a stopped node on its old address.
    pub fn restart(&mut self, id: u64) {
        let p = self.proc_mut(id);
        assert!(p.child.is_none(), "node {id} still running");
        let listen = p.addr.clone();
        start(p, &listen);
        assert_eq!(p.addr, listen);
    }

    pub fn live(&self) -> Vec<u64> {
        self.procs
            .iter()
            .filter(|p| p.child.is_some())
            .map(|p| p.id)
            .collect()
    }

    pub async fn stats(&self, id: u64) -> NodeStats {
        self.client.stats(&self.addr(id)).await.expect("stats")
    }

    pub async fn admin(&self, id: u64, req: ClientRequest) {
        match self
            .client
            .call(&self.addr(id), &req)
            .await
            .expect("admin call")
        {
            ClientResponse::Ok => {}
            other => panic!("admin {req:?} on node {id}: {other:?}"),
        }
    }

    /// Waits until every partition has, on every live node, the same applied decree and the
    /// same data digest.
    pub async fn wait_converged(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let Err(why) = self.converged().await else {
                return;
            };
            assert!(Instant::now() < deadline, "not converged: {why}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn converged(&self) -> Result<(), String> {
        for p in 0..self.layout.partition_count {
            let mut seen = None;
            for id in self.live() {
                let d = self
                    .client
                    .digest(&self.addr(id), &self.layout.name, p)
                    .await
                    .map_err(|e| format!("node {id} p{p}: {e}"))?;
                let Some(applied) = d.applied else {
                    return Err(format!("node {id} p{p}: applied moving"));
                };
                let now = (applied, d.keys, d.hash);
                match seen {
                    None => seen = Some(now),
                    Some(s) if s == now => {}
                    Some(s) => return Err(format!("p{p}: {s:?} vs node {id} {now:?}")),
                }
            }
        }
        Ok(())
    }

    /// A key of partition `p`, distinct per `tag`.
    pub fn key_in(&self, p: u32, tag: &str) -> Vec<u8> {
        (0u64..)
            .map(|i| format!("{tag}-{i}").into_bytes())
            .find(|k| self.layout.partition_of(k) == p)
            .expect("some key hashes to every partition")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Runs `silt-admin --addr <addr> --timeout-ms 5000 <args>` (from a multi-thread runtime):
/// whether it succeeded, its stdout and its stderr.
pub fn silt_admin(addr: &str, args: &[&str]) -> (bool, String, String) {
    silt_admin_env(addr, args, &[])
}

/// [`silt_admin`] with the `AWS_*` variables of this process replaced by `env`.
pub fn silt_admin_env(
    addr: &str,
    args: &[&str],
    env: &[(String, String)],
) -> (bool, String, String) {
    let out = tokio::task::block_in_place(|| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_silt-admin"));
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("AWS_")) {
                cmd.env_remove(k);
            }
        }
        cmd.args(["--addr", addr, "--timeout-ms", "5000"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run silt-admin")
    });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `i`th bulk-load record (key, value).
pub fn record(i: usize) -> (String, String) {
    (
        format!("bulk:{:06}", (i * 7919) % 1_000_000),
        format!("bulk-value-{i}-{}", "v".repeat(i % 17)),
    )
}

/// `sst-ingest build --format csv --partitions 8 --target-file-size 8KiB` of the first
/// `records` records into `root/name`, through the tool's command-line parser and entry point.
pub fn build_n(root: &Path, name: &str, records: usize) -> PathBuf {
    use clap::Parser;
    let input = root.join(format!("{name}.csv"));
    let mut text = String::new();
    for i in 0..records {
        let (k, v) = record(i);
        text.push_str(&format!("{k},{v}\n"));
    }
    std::fs::write(&input, text).unwrap();
    let out = root.join(name);
    let partitions = PARTITIONS.to_string();
    let cli = siltdb_tools::cli::Cli::try_parse_from([
        "sst-ingest".as_ref(),
        "--quiet".as_ref(),
        "build".as_ref(),
        "--format".as_ref(),
        "csv".as_ref(),
        "--input".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--partitions".as_ref(),
        partitions.as_ref(),
        "--target-file-size".as_ref(),
        "8KiB".as_ref(),
    ] as [&std::ffi::OsStr; 13])
    .expect("sst-ingest arguments");
    siltdb_tools::cli::run(cli).expect("sst-ingest build");
    out
}

/// Polls `table`'s bulk load until it finished (panics past `within`).
pub async fn wait_bulk_load_finished(
    client: &Client,
    table: &str,
    within: Duration,
) -> siltdb_server::bulk_load::BulkLoadReport {
    let deadline = Instant::now() + within;
    loop {
        let r = client.query_bulk_load(table).await.expect("query");
        if r.is_finished() {
            return r;
        }
        assert!(Instant::now() < deadline, "load not finished: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True when `SILT_SOAK=1` asks for the long run; any other value (or none) is the short run.
pub fn soak() -> bool {
    std::env::var("SILT_SOAK").is_ok_and(|v| v == "1")
}

//! The Prometheus endpoint (issue 23): `silt-server --metrics-listen ADDR` serves
//! `GET /metrics` in the text exposition format and `GET /healthz`, read with curl (a client
//! we did not write) and with a raw socket for the malformed cases.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl -s -w '\n%{http_code}' URL`: (body, status); None when curl is missing.
fn curl(url: &str) -> Option<(String, String)> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n')?;
    Some((body.to_string(), code.to_string()))
}

/// A raw request: whatever the server answers (maybe nothing) within the bound.
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

/// The sum of the samples of `name` whose labels contain `labels`.
fn sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_healthz_in_the_text_format() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let c = Cluster::start_with(1, &["--metrics-listen", &listen]).await;
    for i in 0..50u32 {
        let k = format!("m{i}");
        c.client.put(TABLE, k.as_bytes(), b"v").await.unwrap();
        c.client.get(TABLE, k.as_bytes()).await.unwrap();
    }
    let url = format!("http://{listen}");
    let text = match curl(&format!("{url}/metrics")) {
        Some((body, code)) => {
            assert_eq!(code, "200", "{body}");
            body
        }
        None => {
            eprintln!("curl not installed: reading with a raw socket");
            let r = raw(&listen, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
            r.split_once("\r\n\r\n").unwrap().1.to_string()
        }
    };
    // At least the 50 writes and 50 gets (a request retried while the partition elected its
    // leader counts again).
    for kind in ["write", "get"] {
        let prefix = format!("siltdb_requests_total{{kind=\"{kind}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"));
        let n: u64 = line[prefix.len()..].parse().unwrap();
        assert!(n >= 50, "{line}");
    }
    // Per partition: the writes counted by kind, with their bytes; the latency histogram's
    // buckets rise to `+Inf`, which equals its count.
    assert!(sum(&text, "siltdb_partition_requests_total", "kind=\"write\"") >= 50.0);
    assert!(sum(&text, "siltdb_partition_requests_total", "kind=\"read\"") >= 50.0);
    assert!(
        sum(
            &text,
            "siltdb_partition_request_bytes_total",
            "kind=\"write\""
        ) >= 150.0
    );
    for p in 0..PARTITIONS {
        let series = format!("table=\"t\",partition=\"{p}\",kind=\"write\"");
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| {
                l.starts_with("siltdb_request_duration_seconds_bucket{") && l.contains(&series)
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        if buckets.is_empty() {
            continue;
        }
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{series}: {buckets:?}"
        );
        let count = sum(&text, "siltdb_request_duration_seconds_count", &series);
        assert_eq!(*buckets.last().unwrap(), count, "{series}");
    }
    // Counters move while writing.
    let writes_before = sum(&text, "siltdb_partition_requests_total", "kind=\"write\"");
    for i in 0..20u32 {
        c.client
            .put(TABLE, format!("n{i}").as_bytes(), b"v")
            .await
            .unwrap();
    }
    let again = curl(&format!("{url}/metrics")).map_or_else(
        || {
            let r = raw(&listen, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            r.split_once("\r\n\r\n").unwrap().1.to_string()
        },
        |(body, _)| body,
    );
    let writes_after = sum(&again, "siltdb_partition_requests_total", "kind=\"write\"");
    assert!(
        writes_after >= writes_before + 20.0,
        "{writes_before} -> {writes_after}"
    );
    for needle in [
        "# TYPE siltdb_request_duration_seconds histogram",
        "# TYPE siltdb_partition_throttled_requests_total counter",
        "# TYPE siltdb_engine_pending_compaction_bytes gauge",
        "siltdb_block_cache_lookups_total{result=\"hit\"} ",
        "siltdb_block_cache_hit_ratio ",
        "# TYPE siltdb_requests_total counter",
        "# TYPE siltdb_raft_is_leader gauge",
        "siltdb_raft_is_leader{table=\"t\",partition=\"0\"} 1",
        "# TYPE siltdb_engine_l0_files gauge",
        "# TYPE siltdb_engine_stall_seconds_total counter",
        "# TYPE siltdb_plog_segments gauge",
        "siltdb_block_cache_capacity_bytes ",
        "siltdb_write_buffer_usage_bytes ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // Every sample line belongs to an announced family and has a numeric value.
    let mut announced = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            announced.insert(rest.split_whitespace().next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| announced.contains(*f)))
                .unwrap_or(name);
            assert!(
                announced.contains(family),
                "sample before its # TYPE: {line}"
            );
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad value: {line}");
            assert!(name.starts_with("siltdb_"), "{line}");
        }
    }
    if let Some((body, code)) = curl(&format!("{url}/healthz")) {
        assert_eq!((code.as_str(), body.as_str()), ("200", "ok\n"));
    }
    if let Some((_, code)) = curl(&format!("{url}/nope")) {
        assert_eq!(code, "404");
    }
    // Garbage, a huge head and a truncated request close their own connections only.
    let r = raw(&listen, b"\x00\x01garbage\r\n\r\n");
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 405"), "{r}");
    let r = raw(&listen, &vec![b'a'; 64 << 10]);
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");
    let _ = raw(&listen, b"GET /metr");
    let r = raw(&listen, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(c.client.get(TABLE, b"m1").await.unwrap().is_some());
}

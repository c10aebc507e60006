//! The Redis endpoint through `silt-server` processes, driven by the `redis` crate (a
//! third-party client) and by `redis-cli`: every command, RESP2 and RESP3, pipelining,
//! Redis-style errors, and a 3-node cluster losing a node under load with nothing
//! acknowledged lost.

mod common;

use common::*;
use redis::{Commands, RedisResult, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const REDIS_ARGS: &[&str] = &[
    "--redis-listen",
    "127.0.0.1:0",
    "--redis-table",
    TABLE,
    "--redis-addr-file",
    "{dir}/redis-addr",
];

fn redis_addr(c: &Cluster, id: u64) -> String {
    let f = c.proc(id).dir.join("redis-addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(a) = std::fs::read_to_string(&f) {
            return a;
        }
        assert!(Instant::now() < deadline, "no redis address for node {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect(addr: &str, resp3: bool) -> redis::Connection {
    let url = if resp3 {
        format!("redis://{addr}/?protocol=resp3")
    } else {
        format!("redis://{addr}/")
    };
    let client = redis::Client::open(url).unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap()
}

fn err_text<T: std::fmt::Debug>(r: RedisResult<T>) -> String {
    let e = r.expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_through_the_redis_crate() {
    let c = Cluster::start_with(1, REDIS_ARGS).await;
    let addr = redis_addr(&c, 1);
    tokio::task::block_in_place(|| {
        let mut r = connect(&addr, false);
        let pong: String = redis::cmd("PING").query(&mut r).unwrap();
        assert_eq!(pong, "PONG");
        let echo: String = redis::cmd("ECHO").arg("hi").query(&mut r).unwrap();
        assert_eq!(echo, "hi");
        let _: () = redis::cmd("SELECT").arg(0).query(&mut r).unwrap();
        assert!(err_text(redis::cmd("SELECT").arg(1).query::<()>(&mut r)).contains("out of range"));

        // Strings.
        let _: () = r.set("k", "v").unwrap();
        assert_eq!(r.get::<_, Option<String>>("k").unwrap(), Some("v".into()));
        assert_eq!(r.get::<_, Option<String>>("missing").unwrap(), None);
        let nx: Option<String> = redis::cmd("SET")
            .arg("k")
            .arg("w")
            .arg("NX")
            .query(&mut r)
            .unwrap();
        assert_eq!(nx, None);
        let xx: Option<String> = redis::cmd("SET")
            .arg("k")
            .arg("w")
            .arg("XX")
            .arg("GET")
            .query(&mut r)
            .unwrap();
        assert_eq!(xx, Some("v".into()));
        let _: () = redis::cmd("SET")
            .arg("e")
            .arg("1")
            .arg("EX")
            .arg(100)
            .query(&mut r)
            .unwrap();
        let ttl: i64 = r.ttl("e").unwrap();
        assert!((99..=100).contains(&ttl), "{ttl}");
        let _: () = redis::cmd("SET")
            .arg("e")
            .arg("2")
            .arg("KEEPTTL")
            .query(&mut r)
            .unwrap();
        assert!(r.pttl::<_, i64>("e").unwrap() > 90_000);
        let _: () = redis::cmd("SET")
            .arg("p")
            .arg("1")
            .arg("PX")
            .arg(300)
            .query(&mut r)
            .unwrap();
        assert!(r.exists::<_, bool>("p").unwrap());
        std::thread::sleep(Duration::from_millis(450));
        assert!(!r.exists::<_, bool>("p").unwrap());
        assert_eq!(r.get::<_, Option<String>>("p").unwrap(), None);
        assert_eq!(r.ttl::<_, i64>("p").unwrap(), -2);
        assert_eq!(r.ttl::<_, i64>("k").unwrap(), -1);
        assert!(r.expire::<_, bool>("k", 50).unwrap());
        assert!(r.ttl::<_, i64>("k").unwrap() > 40);
        assert!(r.persist::<_, bool>("k").unwrap());
        assert!(!r.persist::<_, bool>("k").unwrap());
        assert_eq!(r.ttl::<_, i64>("k").unwrap(), -1);
        assert!(r.pexpire::<_, bool>("k", 200).unwrap());
        assert!(!r.expire::<_, bool>("nothing", 5).unwrap());
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(r.get::<_, Option<String>>("k").unwrap(), None);
        assert!(r.set_nx::<_, _, bool>("n", "1").unwrap());
        assert!(!r.set_nx::<_, _, bool>("n", "2").unwrap());
        let gd: Option<String> = redis::cmd("GETDEL").arg("n").query(&mut r).unwrap();
        assert_eq!(gd, Some("1".into()));
        let gd: Option<String> = redis::cmd("GETDEL").arg("n").query(&mut r).unwrap();
        assert_eq!(gd, None);
        assert_eq!(r.incr::<_, _, i64>("ctr", 1).unwrap(), 1);
        assert_eq!(
            redis::cmd("INCR").arg("ctr").query::<i64>(&mut r).unwrap(),
            2
        );
        assert_eq!(
            redis::cmd("INCRBY")
                .arg("ctr")
                .arg(10)
                .query::<i64>(&mut r)
                .unwrap(),
            12
        );
        assert_eq!(
            redis::cmd("DECR").arg("ctr").query::<i64>(&mut r).unwrap(),
            11
        );
        assert_eq!(
            redis::cmd("DECRBY")
                .arg("ctr")
                .arg(20)
                .query::<i64>(&mut r)
                .unwrap(),
            -9
        );
        let _: () = r.set("big", i64::MAX).unwrap();
        assert!(err_text(redis::cmd("INCR").arg("big").query::<i64>(&mut r)).contains("overflow"));
        let _: () = r.set("txt", "abc").unwrap();
        assert!(
            err_text(redis::cmd("INCR").arg("txt").query::<i64>(&mut r)).contains("not an integer")
        );
        assert!(err_text(
            redis::cmd("INCRBY")
                .arg("ctr")
                .arg("x")
                .query::<i64>(&mut r)
        )
        .contains("not an integer"));
        let _: () = redis::cmd("MSET")
            .arg("m1")
            .arg("a")
            .arg("m2")
            .arg("b")
            .query(&mut r)
            .unwrap();
        let got: Vec<Option<String>> = redis::cmd("MGET")
            .arg("m1")
            .arg("zz")
            .arg("m2")
            .query(&mut r)
            .unwrap();
        assert_eq!(got, vec![Some("a".into()), None, Some("b".into())]);
        assert_eq!(
            redis::cmd("EXISTS")
                .arg("m1")
                .arg("m2")
                .arg("zz")
                .arg("m1")
                .query::<i64>(&mut r)
                .unwrap(),
            3
        );
        assert_eq!(
            redis::cmd("DEL")
                .arg("m1")
                .arg("m2")
                .arg("zz")
                .query::<i64>(&mut r)
                .unwrap(),
            2
        );

        // Hashes.
        assert_eq!(
            redis::cmd("HSET")
                .arg("h")
                .arg("f1")
                .arg("v1")
                .arg("f2")
                .arg("v2")
                .query::<i64>(&mut r)
                .unwrap(),
            2
        );
        assert_eq!(
            redis::cmd("HSET")
                .arg("h")
                .arg("f1")
                .arg("x")
                .arg("f3")
                .arg("v3")
                .query::<i64>(&mut r)
                .unwrap(),
            1
        );
        assert_eq!(
            r.hget::<_, _, Option<String>>("h", "f1").unwrap(),
            Some("x".into())
        );
        assert_eq!(r.hget::<_, _, Option<String>>("h", "nope").unwrap(), None);
        assert_eq!(r.hlen::<_, i64>("h").unwrap(), 3);
        let all: HashMap<String, String> = r.hgetall("h").unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all["f3"], "v3");
        let hm: Vec<Option<String>> = redis::cmd("HMGET")
            .arg("h")
            .arg("f2")
            .arg("no")
            .query(&mut r)
            .unwrap();
        assert_eq!(hm, vec![Some("v2".into()), None]);
        let (cursor, items): (String, Vec<String>) = redis::cmd("HSCAN")
            .arg("h")
            .arg(0)
            .arg("MATCH")
            .arg("f[12]")
            .query(&mut r)
            .unwrap();
        assert_eq!(cursor, "0");
        assert_eq!(items, vec!["f1", "x", "f2", "v2"]);
        assert_eq!(
            redis::cmd("HDEL")
                .arg("h")
                .arg("f1")
                .arg("zz")
                .query::<i64>(&mut r)
                .unwrap(),
            1
        );
        assert_eq!(r.hlen::<_, i64>("h").unwrap(), 2);
        // Type errors both ways.
        assert!(err_text(r.get::<_, Option<String>>("h")).starts_with("WRONGTYPE"));
        assert!(err_text(r.hget::<_, _, Option<String>>("txt", "f")).starts_with("WRONGTYPE"));
        assert!(err_text(
            redis::cmd("HSET")
                .arg("txt")
                .arg("f")
                .arg("v")
                .query::<i64>(&mut r)
        )
        .starts_with("WRONGTYPE"));
        assert_eq!(r.del::<_, i64>("h").unwrap(), 1);
        assert_eq!(r.hlen::<_, i64>("h").unwrap(), 0);

        // SCAN and DBSIZE over every partition.
        for i in 0..30 {
            let _: () = r.set(format!("s:{i}"), i).unwrap();
        }
        let _: i64 = redis::cmd("HSET")
            .arg("s:hash")
            .arg("a")
            .arg("1")
            .arg("b")
            .arg("2")
            .query(&mut r)
            .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = 0u64;
        let mut rounds = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("s:*")
                .arg("COUNT")
                .arg(7)
                .query(&mut r)
                .unwrap();
            seen.extend(keys);
            rounds += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert!(rounds > 1);
        assert_eq!(seen.len(), 31, "{seen:?}");
        let total: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
        let all_keys: Vec<String> = r.scan().unwrap().map(|k| k.unwrap()).collect();
        assert_eq!(
            total as usize,
            all_keys
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );

        // Server commands.
        let info: String = redis::cmd("INFO").query(&mut r).unwrap();
        assert!(info.contains("redis_version"));
        let cmds: Value = redis::cmd("COMMAND").query(&mut r).unwrap();
        assert!(matches!(cmds, Value::Array(ref v) if v.len() > 30));
        assert!(err_text(redis::cmd("AUTH").arg("pw").query::<()>(&mut r))
            .contains("without any password configured"));

        // Errors as Redis words them.
        assert_eq!(
            err_text(redis::cmd("FOO").arg("a").arg("b").query::<()>(&mut r)),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            err_text(redis::cmd("GET").query::<()>(&mut r)),
            "ERR wrong number of arguments for 'get' command"
        );
        assert!(err_text(
            redis::cmd("SET")
                .arg("a")
                .arg("b")
                .arg("EX")
                .arg("x")
                .query::<()>(&mut r)
        )
        .contains("not an integer"));
        assert!(err_text(
            redis::cmd("SET")
                .arg("a")
                .arg("b")
                .arg("BOGUS")
                .query::<()>(&mut r)
        )
        .contains("syntax error"));

        // Pipelining: many commands in one write, answered in order.
        let mut pipe = redis::pipe();
        for i in 0..200 {
            pipe.cmd("SET").arg(format!("pl{i}")).arg(i).ignore();
        }
        for i in 0..200 {
            pipe.cmd("GET").arg(format!("pl{i}"));
        }
        let got: Vec<i64> = pipe.query(&mut r).unwrap();
        assert_eq!(got, (0..200).collect::<Vec<_>>());

        // RESP3: HELLO 3, maps and nulls.
        let mut r3 = connect(&addr, true);
        let all: HashMap<String, String> = r3.hgetall("s:hash").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(r3.get::<_, Option<String>>("nothing").unwrap(), None);
        let hello: Value = redis::cmd("HELLO").arg(3).query(&mut r3).unwrap();
        assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_closes_only_its_connection_and_redis_cli_works() {
    use std::io::{Read, Write};
    let c = Cluster::start_with(1, REDIS_ARGS).await;
    let addr = redis_addr(&c, 1);
    tokio::task::block_in_place(|| {
        let mut good = connect(&addr, false);
        let _: () = good.set("before", "1").unwrap();
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"*99999999999\r\n").unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf).starts_with("-ERR Protocol error"),
            "{buf:?}"
        );
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"*1\r\n$9999999999\r\n").unwrap();
        buf.clear();
        s.read_to_end(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf).contains("invalid bulk length"));
        // Inline commands, as telnet sends them.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"PING\r\nECHO hello\r\nQUIT\r\n").unwrap();
        buf.clear();
        s.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"+PONG\r\n$5\r\nhello\r\n+OK\r\n");
        assert_eq!(good.get::<_, String>("before").unwrap(), "1");

        let (host, port) = addr.rsplit_once(':').unwrap();
        let cli = |args: &[&str]| {
            std::process::Command::new("redis-cli")
                .args(["-h", host, "-p", port])
                .args(args)
                .output()
        };
        match cli(&["PING"]) {
            Err(e) => {
                eprintln!("redis-cli not available ({e}); skipping the redis-cli part");
            }
            Ok(out) => {
                assert_eq!(String::from_utf8_lossy(&out.stdout), "PONG\n");
                let out = cli(&["SET", "cli", "hello"]).unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
                let out = cli(&["GET", "cli"]).unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
                let out = cli(&["HSET", "ch", "f", "v"]).unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
                let out = cli(&["-3", "HGETALL", "ch"]).unwrap();
                assert!(String::from_utf8_lossy(&out.stdout).contains('f'));
                let out = cli(&["--scan", "--pattern", "cl*"]).unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), "cli\n");
                let out = cli(&["NOSUCH"]).unwrap();
                assert!(String::from_utf8_lossy(&out.stdout).contains("unknown command"));
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_survive_a_node_kill_with_nothing_acknowledged_lost() {
    let mut c = Cluster::start_with(3, REDIS_ARGS).await;
    // Leaders everywhere before the load.
    let pg = c.client.pegasus(TABLE);
    for p in 0..PARTITIONS {
        pg.set(
            &c.key_in(p, "warm"),
            b"",
            b"",
            siltdb_server::pegasus::Ttl::Never,
        )
        .await
        .unwrap();
    }
    let addr2 = redis_addr(&c, 2);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = std::sync::Arc::clone(&stop);
    // Writes through node 2's endpoint while node 1 (leading some partitions) dies.
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut r = connect(&addr2, false);
        for i in 0..100_000u32 {
            if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let k = format!("ack:{i}");
            if redis::cmd("SET").arg(&k).arg(i).query::<()>(&mut r).is_ok() {
                acked.push(k);
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    c.kill9(1);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    c.restart(1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = tokio::task::block_in_place(|| writer.join().unwrap());
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    // Every acknowledged write is readable through every node's endpoint (node 1 restarted).
    for id in [1, 2, 3] {
        let addr = redis_addr(&c, id);
        let acked = acked.clone();
        tokio::task::block_in_place(|| {
            let mut r = connect(&addr, false);
            for chunk in acked.chunks(100) {
                let got: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut r).unwrap();
                for (k, v) in chunk.iter().zip(got) {
                    let want = k.trim_start_matches("ack:");
                    assert_eq!(v.as_deref(), Some(want), "node {id} lost {k}");
                }
            }
        });
    }
}

//! `pssim judge DIR` as an operator meets it: a cluster started by hand
//! (every node its own `pssim node` process, stdin closed, stopped with
//! signals) is judged afterwards from its events directory, in logical
//! order even when a machine's clock is seconds off; and `pssim judge`
//! on a `pssim local` run's directory gives that run's own outcome.

use pssim::core::NodeId;
use pssim::net::cluster::{self, Layout};
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

const PSSIM: &str = env!("CARGO_BIN_EXE_pssim");

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pssim-real-judge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `pssim ARGS`; its exit code, stdout and stderr.
fn pssim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(PSSIM).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `pssim judge DIR --json` gives exactly the outcome `pssim local --dir
/// DIR --json` printed (every field: checks, violations, accuracy, the
/// parameters' digest, traffic, failovers, times), here with a node killed
/// and not restarted (its life ends without a final report), as processes
/// and as tasks of one process.
#[test]
fn judging_a_local_runs_directory_gives_its_own_outcome() {
    for (name, extra) in [
        ("tests/real/replicated-kill.toml", None),
        ("scenarios/worker-crash-restart.toml", None),
        ("tests/real/replicated-kill.toml", Some("--in-process")),
    ] {
        let dir = temp_dir(&format!("local-{}", extra.is_some()));
        let file = repo(name);
        let mut args = vec![
            "local",
            file.to_str().unwrap(),
            "--json",
            "--seed",
            "1",
            "--dir",
            dir.to_str().unwrap(),
        ];
        args.extend(extra);
        let (code, out, err) = pssim(&args);
        assert_eq!(code, 0, "pssim local {name}: {out}\n{err}");
        let local = json(&out);
        assert_eq!(local["passed"], true, "{local}");
        // The directory itself, or its events subdirectory.
        for d in [dir.clone(), dir.join("events")] {
            let (code, out, err) = pssim(&["judge", d.to_str().unwrap(), "--json"]);
            assert_eq!(code, 0, "pssim judge {}: {err}", d.display());
            assert_eq!(json(&out), local, "{name} {extra:?}");
        }
        // The judge can fail: without server-0's applies, its replicas'
        // histories miss what the reads needed.
        if extra.is_none() && name.contains("replicated-kill") {
            let tampered = dir.join("tampered");
            std::fs::create_dir_all(&tampered).unwrap();
            for f in std::fs::read_dir(dir.join("events")).unwrap() {
                let f = f.unwrap().path();
                let text = std::fs::read_to_string(&f).unwrap();
                let kept: String = text
                    .lines()
                    .filter(|l| {
                        !(l.contains("\"push_applied\"") && l.contains("\"server\":\"server-0\""))
                    })
                    .map(|l| format!("{l}\n"))
                    .collect();
                assert!(
                    kept.len() < text.len() || !f.ends_with("server-0-0.jsonl"),
                    "server-0 applied pushes"
                );
                std::fs::write(tampered.join(f.file_name().unwrap()), kept).unwrap();
            }
            let (code, out, err) = pssim(&["judge", tampered.to_str().unwrap(), "--json"]);
            assert_eq!(code, 1, "{out}\n{err}");
            let o = json(&out);
            assert_eq!(o["passed"], false);
            assert!(
                o["violations"].as_object().is_some_and(|v| !v.is_empty()),
                "{o}"
            );
        }
        // Several lives of one node: worker-4 restarted.
        if name.contains("worker-crash-restart") {
            assert!(dir.join("events/worker-4-1.jsonl").exists());
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// A running `pssim node` and what it printed.
struct Node {
    id: NodeId,
    child: Child,
}

/// Whether `line` is a `status` line saying the node is done.
fn done(line: &str) -> bool {
    line.strip_prefix("status ")
        .is_some_and(|j| json(j)["done"] == true)
}

/// The merged trace's events, in order.
fn read_trace(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(json)
        .collect()
}

/// Every event of the events files, by its writer's wall clock (what the
/// merge did before logical stamps).
fn by_wall_time(events: &Path) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    for f in std::fs::read_dir(events).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        all.extend(text.lines().map(json).filter(|v| v.get("ev").is_some()));
    }
    all.sort_by_key(|v| v["t_us"].as_u64().unwrap());
    all
}

/// Acknowledgements that come, in `events`, before an apply of the same
/// push by `server` (`applied_ever`: the pushes that server applied at
/// all). In a run without faults every replica of a chain applies a push
/// before its acknowledgement is sent.
fn acks_before_apply(events: &[Value], server: &str) -> (usize, usize) {
    let key = |v: &Value| format!("{} {} {}", v["range"], v["worker"], v["seq"]);
    let applied_ever: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|v| v["ev"] == "push_applied" && v["server"] == server)
        .map(key)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut early = 0;
    let mut acks = 0;
    for v in events {
        let k = key(v);
        if v["ev"] == "push_applied" && v["server"] == server {
            seen.insert(k);
        } else if v["ev"] == "push_acked" && applied_ever.contains(&k) {
            acks += 1;
            if !seen.contains(&k) {
                early += 1;
            }
        }
    }
    (early, acks)
}

/// A cluster started by hand: each node a `pssim node` with stdin closed,
/// server-0's clock 3 s ahead of the others (`PSSIM_TEST_CLOCK_SKEW_MS`).
/// Once the workers are done every node is stopped by a signal (SIGTERM,
/// worker-0 SIGINT): each writes its final report and exits 0. `pssim
/// judge` then passes every check, and its merge puts every push's apply
/// by server-0 before the push's acknowledgement, and every apply after
/// its worker started that clock, where the wall clocks put the
/// acknowledgements first.
#[test]
fn a_hand_started_cluster_with_a_skewed_clock_is_judged_in_causal_order() {
    let dir = temp_dir("hand");
    let scenario = repo("tests/real/hand-cluster.toml");
    let scn = pssim::scenario::load(&scenario).unwrap();
    let (peers, held) = cluster::loopback_layout(&scn).unwrap();
    drop(held);
    let origin_unix_us = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let cluster_file = dir.join("cluster.toml");
    cluster::write(
        &cluster_file,
        &Layout {
            scenario,
            seed: 1,
            events_dir: Some(PathBuf::from("events")),
            origin_unix_us: Some(origin_unix_us),
            step_time: None,
            peers: peers.clone(),
        },
    )
    .unwrap();
    let (tx, rx) = mpsc::channel::<(NodeId, String)>();
    let mut nodes: Vec<Node> = peers
        .keys()
        .map(|&id| {
            let mut cmd = Command::new(PSSIM);
            cmd.arg("node")
                .arg("--cluster")
                .arg(&cluster_file)
                .args(["--id", &id.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.join(format!("{id}.log"))).unwrap());
            if id == NodeId::Server(0) {
                cmd.env("PSSIM_TEST_CLOCK_SKEW_MS", "3000");
            }
            let mut child = cmd.spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((id, line)).is_err() {
                        return;
                    }
                }
            });
            Node { id, child }
        })
        .collect();
    // Until every worker is done (stdin is closed: the nodes keep running).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finished = std::collections::BTreeSet::new();
    let mut finals = std::collections::BTreeSet::new();
    while finished.len() < scn.cluster.workers as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        let (id, line) = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "workers not done after 60 s: {finished:?} (logs in {})",
                dir.display()
            )
        });
        if id.worker().is_some() && done(&line) {
            finished.insert(id);
        }
    }
    // Let the chains settle, then stop every node with a signal.
    std::thread::sleep(Duration::from_millis(500));
    for n in &nodes {
        let sig = if n.id == NodeId::Worker(0) {
            "-INT"
        } else {
            "-TERM"
        };
        let ok = Command::new("kill")
            .args([sig, &n.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    for n in &mut nodes {
        let status = n.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{} after a signal", n.id);
    }
    drop(tx);
    for (id, line) in rx.iter() {
        if line.starts_with("final ") {
            finals.insert(id);
        }
    }
    assert_eq!(
        finals.len(),
        peers.len(),
        "every node printed its final report"
    );
    let events = dir.join("events");
    let trace = dir.join("trace.jsonl");
    let (code, out, err) = pssim(&[
        "judge",
        events.to_str().unwrap(),
        "--json",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let o = json(&out);
    assert_eq!(o["passed"], true, "{o}");
    for c in [
        "no_lost_updates",
        "replicas_agree",
        "log_matching",
        "staleness_bound",
        "min_accuracy",
    ] {
        assert_eq!(o["checks"][c], "pass", "{c}: {o}");
    }
    assert!(o["final_accuracy"].as_f64().unwrap() >= 0.9, "{o}");
    assert_eq!(o["updates_lost"], 0);
    // Every server reported its replicas, every node a final line in its
    // events file.
    for id in peers.keys() {
        let text = std::fs::read_to_string(events.join(format!("{id}-0.jsonl"))).unwrap();
        assert!(
            text.lines().last().unwrap().starts_with("{\"final\""),
            "{id}"
        );
    }
    // The merged trace starts with the initial view and every initial
    // worker admitted at clock 0.
    let merged = read_trace(&trace);
    assert_eq!(merged[0]["ev"], "view");
    for w in 0..scn.cluster.workers {
        let v = &merged[1 + w as usize];
        assert_eq!(
            (v["ev"].as_str(), v["worker"].as_u64(), v["clock"].as_u64()),
            (Some("worker_admitted"), Some(u64::from(w)), Some(0))
        );
    }
    // Causal order in the merge; not by the wall clocks.
    let (early, acks) = acks_before_apply(&merged, "server-0");
    assert!(
        acks > 100,
        "{acks} acknowledgements of pushes server-0 applied"
    );
    assert_eq!(
        early, 0,
        "{early} of {acks} acknowledgements before server-0's apply in the merge"
    );
    let (early_wall, acks_wall) = acks_before_apply(&by_wall_time(&events), "server-0");
    assert_eq!(acks_wall, acks);
    eprintln!(
        "acknowledgements before server-0's apply: merged {early} of {acks}, by wall time {early_wall} of {acks_wall}"
    );
    assert!(
        early_wall * 10 > acks_wall * 9,
        "by wall time only {early_wall} of {acks_wall} acknowledgements come before server-0's apply"
    );
    // Every apply after its worker started that clock.
    let mut started = std::collections::BTreeSet::new();
    for v in &merged {
        match v["ev"].as_str() {
            Some("worker_clock") => {
                started.insert((v["worker"].as_u64(), v["clock"].as_u64()));
            }
            Some("push_applied") => assert!(
                started.contains(&(v["worker"].as_u64(), v["clock"].as_u64())),
                "{v} before its worker_clock"
            ),
            _ => {}
        }
    }
    // Times along the merge never go back.
    let times: Vec<u64> = merged.iter().map(|v| v["t_us"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    std::fs::remove_dir_all(&dir).ok();
}

/// A first life waits at the start-up barrier until every peer listens
/// (the cluster file's `startup_timeout`, 60 s by default). With no peer
/// started, SIGTERM, SIGINT and `finish` on stdin each stop such a node at
/// once (not after the barrier's minute), with exit code 0, no report and
/// an events file holding only its header (`pssim judge` would end that
/// life with a crash); `pssim judge` reads the directory.
#[test]
fn a_node_waiting_for_its_peers_stops_at_once_on_a_signal_or_finish() {
    let dir = temp_dir("barrier");
    let scenario = repo("tests/real/hand-cluster.toml");
    let scn = pssim::scenario::load(&scenario).unwrap();
    let (peers, held) = cluster::loopback_layout(&scn).unwrap();
    drop(held);
    let cluster_file = dir.join("cluster.toml");
    cluster::write(
        &cluster_file,
        &Layout {
            scenario,
            seed: 1,
            events_dir: Some(PathBuf::from("events")),
            origin_unix_us: None,
            step_time: None,
            peers,
        },
    )
    .unwrap();
    // server-0 is stopped by SIGTERM, server-1 by SIGINT, worker-0 by
    // `finish`; nobody else is started.
    let how = [
        (NodeId::Server(0), "-TERM"),
        (NodeId::Server(1), "-INT"),
        (NodeId::Worker(0), "finish"),
    ];
    let mut nodes: Vec<(NodeId, &str, Child, mpsc::Receiver<String>)> = how
        .iter()
        .map(|&(id, stop)| {
            let mut child = Command::new(PSSIM)
                .arg("node")
                .arg("--cluster")
                .arg(&cluster_file)
                .args(["--id", &id.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.join(format!("{id}.log"))).unwrap())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = tx.send(line);
                }
            });
            (id, stop, child, rx)
        })
        .collect();
    for (id, _, _, rx) in &nodes {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(line.starts_with("ready "), "{id}: {line}");
    }
    // Well inside the barrier: every probe of the peers is refused.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    for (id, stop, child, _) in &mut nodes {
        if *stop == "finish" {
            use std::io::Write;
            writeln!(child.stdin.as_mut().unwrap(), "finish").unwrap();
        } else {
            let ok = Command::new("kill")
                .args([*stop, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(ok.success(), "{id}");
        }
    }
    for (id, stop, child, rx) in &mut nodes {
        let code = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.code();
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{id} still waiting for its peers {:?} after {stop}",
                t.elapsed()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(code, Some(0), "{id} after {stop}");
        let said: Vec<String> = rx.try_iter().collect();
        assert!(
            said.iter().all(|l| !l.starts_with("final ")),
            "{id}: {said:?}"
        );
        let log = std::fs::read_to_string(dir.join(format!("{id}.log"))).unwrap();
        assert!(
            log.contains("while waiting for its peers: stopping before the first step"),
            "{id}: {log}"
        );
    }
    eprintln!(
        "stopped during the start-up barrier within {:?}",
        t.elapsed()
    );
    let events = pssim::net::events::read_dir(&dir.join("events")).unwrap();
    for (id, _) in how {
        let lives = &events.lives[&id];
        assert_eq!(lives.len(), 1, "{id}");
        assert!(lives[0].events.is_empty(), "{id}: {:?}", lives[0].events);
        assert!(lives[0].report.is_none(), "{id}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Bad directories are bad input (exit code 2) with the file and line.
#[test]
fn judge_refuses_what_it_cannot_judge_and_says_where() {
    let dir = temp_dir("bad");
    let (code, _, err) = pssim(&["judge", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no events files"), "{err}");
    let (code, _, err) = pssim(&["judge", dir.join("missing").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    // A file that is not an events file.
    std::fs::write(
        dir.join("worker-0-0.jsonl"),
        "{\"t_us\":1,\"ev\":\"crash\",\"node\":\"worker-0\"}\n",
    )
    .unwrap();
    let (code, _, err) = pssim(&["judge", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("worker-0-0.jsonl:1:") && err.contains("header"),
        "{err}"
    );
    // A header, then a line that is not a record.
    let scn = pssim::scenario::load(&repo("tests/real/hand-cluster.toml")).unwrap();
    let header = serde_json::json!({"header": {
        "pssim_events": 2, "node": "worker-0", "incarnation": 0, "seed": 1,
        "scenario_file": "x", "scenario": scn.to_toml(), "pssim": "test"}});
    std::fs::write(
        dir.join("worker-0-0.jsonl"),
        format!("{header}\n{{\"t_us\":1}}\n{{}}\n"),
    )
    .unwrap();
    let (code, _, err) = pssim(&["judge", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("worker-0-0.jsonl:2:"), "{err}");
    // A node the scenario does not have.
    let mut h = header.clone();
    h["header"]["node"] = "worker-9".into();
    std::fs::write(dir.join("worker-0-0.jsonl"), format!("{h}\n")).unwrap();
    let (code, _, err) = pssim(&["judge", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("worker-9 is not a node"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every flag of `pssim node` is in its `--help`, with how to stop it.
#[test]
fn node_help_shows_every_flag_and_how_to_stop_a_node() {
    let (code, out, _) = pssim(&["node", "--help"]);
    assert_eq!(code, 0);
    for s in [
        "--cluster",
        "--role",
        "--id",
        "--incarnation",
        "--data-dir",
        "--exit-on-eof",
        "SIGTERM",
        "SIGINT",
        "startup_timeout",
        "pssim judge",
    ] {
        assert!(
            out.contains(s),
            "{s} missing from pssim node --help:\n{out}"
        );
    }
    let (code, out, _) = pssim(&["judge", "--help"]);
    assert_eq!(code, 0);
    for s in ["--json", "--trace", "Exit codes"] {
        assert!(
            out.contains(s),
            "{s} missing from pssim judge --help:\n{out}"
        );
    }
}

//! Durable state on disk (src/net/store.rs) as a person meets it: a
//! `pssim node` whose data directory holds a corrupt, truncated or foreign
//! state file refuses to start (exit code 2, an error naming the file and
//! what is wrong) instead of starting afresh; an intact file of an earlier
//! life is recovered.

use pssim::core::{CoordinatorState, Durable, Epoch, NodeId, View};
use pssim::net::cluster::{self, Layout};
use pssim::net::store::{self, Store};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pssim-real-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A cluster file for `scenarios/default.toml` on free loopback ports
/// (each test its own: the tests of this file run in parallel, and a
/// fixed port range let two coordinators race for one port).
fn cluster_file(dir: &Path) -> PathBuf {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/default.toml");
    let scn = pssim::scenario::load(&scenario).unwrap();
    let (peers, held) = cluster::loopback_layout(&scn).unwrap();
    drop(held);
    let path = dir.join("cluster.toml");
    cluster::write(
        &path,
        &Layout {
            scenario,
            seed: 1,
            events_dir: None,
            origin_unix_us: None,
            step_time: None,
            peers,
        },
    )
    .unwrap();
    path
}

/// A coordinator's state at view epoch 7 (a fresh start is at 1).
fn coordinator_state() -> Durable {
    let scn = pssim::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/default.toml"),
    )
    .unwrap();
    let mut view = View::initial(scn.cluster.servers, scn.cluster.replication);
    view.epoch = Epoch(7);
    Durable::Coordinator(CoordinatorState {
        membership: pssim::core::Membership::initial(scn.cluster.workers),
        view,
        admitted: BTreeMap::new(),
        sessions: 0,
        changes: Vec::new(),
        attempts: 0,
        ceilings: BTreeMap::new(),
    })
}

/// Starts `pssim node` (the coordinator, life `incarnation`) on `data`;
/// if it gets as far as `ready`, tells it to finish. Returns its exit
/// code, stdout and stderr.
fn coordinator(cluster: &Path, data: &Path, incarnation: u32) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pssim"))
        .arg("node")
        .arg("--cluster")
        .arg(cluster)
        .args([
            "--id",
            "coordinator",
            "--incarnation",
            &incarnation.to_string(),
        ])
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A node that starts waits for `finish`; one that refuses has exited
    // and the write fails harmlessly.
    let _ = child.stdin.take().unwrap().write_all(b"finish\n");
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_node_refuses_a_state_file_it_cannot_recover_and_names_it() {
    let dir = temp_dir("corrupt");
    let cluster = cluster_file(&dir);
    let data = dir.join("data");
    let file = data.join(store::FILE_NAME);
    let good = store::encode(NodeId::Coordinator, 0, &coordinator_state());
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let cases: [(&str, Vec<u8>); 5] = [
        ("checksum mismatch", flipped),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("truncated: 0 bytes", Vec::new()),
        ("not a pssim state file", b"garbage, not a state".to_vec()),
        (
            "holds the state of server-0, not of coordinator",
            store::encode(NodeId::Server(0), 0, &Durable::Server(BTreeMap::new())),
        ),
    ];
    std::fs::create_dir_all(&data).unwrap();
    for (what, bytes) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let (code, stdout, stderr) = coordinator(&cluster, &data, 1);
        assert_eq!(code, Some(2), "{what}: stdout {stdout:?} stderr {stderr:?}");
        assert!(!stdout.contains("ready"), "{what}: it started: {stdout}");
        assert!(
            stderr.contains(&file.display().to_string()) && stderr.contains(what),
            "{what}: {stderr}"
        );
        // Left as it was, for a person to look at.
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "{what}");
    }
    // An intact file, but this life wrote it (or a later one did): a
    // restart must be a later life.
    std::fs::write(&file, &good).unwrap();
    let (code, _, stderr) = coordinator(&cluster, &data, 0);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--incarnation 1 or more"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_later_life_started_by_hand_recovers_the_state_file() {
    let dir = temp_dir("recover");
    let cluster = cluster_file(&dir);
    // What the coordinator's first life left (say, on another machine,
    // then copied here).
    let data = dir.join("data");
    let state = coordinator_state();
    Store::open(&data, NodeId::Coordinator, 0)
        .unwrap()
        .write(&state)
        .unwrap();
    let (code, stdout, stderr) = coordinator(&cluster, &data, 1);
    assert_eq!(code, Some(0), "stdout {stdout:?} stderr {stderr:?}");
    assert!(stdout.contains("ready"), "{stdout}");
    // It runs on the recovered view, not on a fresh one.
    assert!(stdout.contains(r#""epoch":7"#), "{stdout}");
    assert!(stdout.contains("final "), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_data_directory_in_use_is_refused_and_freed_when_its_holder_ends() {
    let dir = temp_dir("locked");
    let cluster = cluster_file(&dir);
    let data = dir.join("data");
    // Another life holds the directory (here: this process).
    let holder = Store::open(&data, NodeId::Coordinator, 0).unwrap();
    let (code, stdout, stderr) = coordinator(&cluster, &data, 1);
    assert_eq!(code, Some(2), "stdout {stdout:?} stderr {stderr:?}");
    assert!(!stdout.contains("ready"), "{stdout}");
    assert!(
        stderr.contains(store::LOCK_NAME) && stderr.contains("locked by another process"),
        "{stderr}"
    );
    // Once it ends, the next life starts.
    drop(holder);
    let (code, stdout, stderr) = coordinator(&cluster, &data, 1);
    assert_eq!(code, Some(0), "stdout {stdout:?} stderr {stderr:?}");
    assert!(stdout.contains("final "), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

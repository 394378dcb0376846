//! containctl run as the admin runs it: the real binary, on a fixture host tree (`--root`)
//! shaped like the kernel's cgroupfs and /proc, Debian's /etc, and contain's /run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel.trim_start_matches('/'));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
}

const M: u64 = 1 << 20;

/// Writes one cgroup's files as the kernel shows them.
fn cgroup(root: &Path, path: &str, current: u64, high: &str, max: &str, swap_max: &str, pids_max: &str) {
    let dir = format!("sys/fs/cgroup{path}");
    put(root, &format!("{dir}/memory.current"), &format!("{current}\n"));
    put(root, &format!("{dir}/memory.high"), &format!("{high}\n"));
    put(root, &format!("{dir}/memory.max"), &format!("{max}\n"));
    put(
        root,
        &format!("{dir}/memory.peak"),
        &format!("{}\n", current + 10 * M),
    );
    put(root, &format!("{dir}/memory.swap.current"), "0\n");
    put(root, &format!("{dir}/memory.swap.max"), &format!("{swap_max}\n"));
    put(
        root,
        &format!("{dir}/memory.pressure"),
        "some avg10=12.50 avg60=3.10 avg300=0.70 total=123456\nfull avg10=9.25 avg60=2.00 avg300=0.50 total=99999\n",
    );
    put(
        root,
        &format!("{dir}/io.pressure"),
        "some avg10=41.00 avg60=20.00 avg300=5.00 total=777\nfull avg10=37.50 avg60=18.00 avg300=4.00 total=666\n",
    );
    put(root, &format!("{dir}/pids.current"), "7\n");
    put(root, &format!("{dir}/pids.max"), &format!("{pids_max}\n"));
    put(
        root,
        &format!("{dir}/memory.events"),
        "low 0\nhigh 1836\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
    );
    put(root, &format!("{dir}/cpu.weight"), "100\n");
    put(root, &format!("{dir}/io.weight"), "default 100\n");
}

const COMMON_SESSION: &str = include_str!("../../tests/fixtures/etc/pam.d/common-session");
const NONINTERACTIVE: &str = "\
session\t[default=1]\t\t\tpam_permit.so
session\trequisite\t\t\tpam_deny.so
session\trequired\t\t\tpam_permit.so
session\trequired\tpam_unix.so
session\trequired\tpam_contain.so
";

/// A 2 GB host with the VM test policy in force, alice and bob logged in, caps right.
fn host() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let fixtures = workspace().join("tests/fixtures/etc");
    // The VM's directory accounts the test policy names (ldapdave, ldaphpc), here as files.
    put(
        r,
        "etc/passwd",
        &(fs::read_to_string(fixtures.join("passwd")).unwrap()
            + "ldapdave:x:5002:5002::/home/ldapdave:/bin/bash\n"),
    );
    put(
        r,
        "etc/group",
        &(fs::read_to_string(fixtures.join("group")).unwrap() + "ldaphpc:x:6000:\n"),
    );
    put(
        r,
        "etc/contain/policy.toml",
        &fs::read_to_string(workspace().join("tests/vm/policy.toml")).unwrap(),
    );
    put(r, "etc/pam.d/common-session", COMMON_SESSION);
    put(r, "etc/pam.d/common-session-noninteractive", NONINTERACTIVE);
    put(
        r,
        "etc/docker/daemon.json",
        "{\"cgroup-parent\": \"docker.slice\"}\n",
    );
    put(r, "usr/bin/dockerd", "");
    put(r, "usr/lib/systemd/systemd-oomd", "");
    put(
        r,
        "proc/meminfo",
        "MemTotal:        2000000 kB\nMemFree:          500000 kB\nSwapTotal:       1048572 kB\n",
    );
    put(r, "proc/vmstat", "pgscan_direct 33\npswpin 0\npswpout 0\n");
    put(
        r,
        "proc/pressure/memory",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    );
    put(r, "proc/sys/kernel/pid_max", "4194304\n");
    put(r, "proc/sys/kernel/threads-max", "15000\n");
    put(r, "proc/1/comm", "systemd\n");
    put(r, "proc/412/comm", "systemd-oomd\n");
    // The kernel cuts comm at 15 bytes.
    put(r, "proc/413/comm", "contain-watchdo\n");
    put(
        r,
        "sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    cgroup(r, "/user.slice", 600 * M, "max", "943718400", "max", "max");
    cgroup(
        r,
        "/user.slice/user-1001.slice",
        500 * M,
        "629145600",
        "734003200",
        "0",
        "512",
    );
    // alice's override: CPUQuota=150% (systemd's default 100 ms period).
    put(
        r,
        "sys/fs/cgroup/user.slice/user-1001.slice/cpu.max",
        "150000 100000\n",
    );
    cgroup(
        r,
        "/user.slice/user-1002.slice",
        100 * M,
        "629145600",
        "838860800",
        "0",
        "512",
    );
    cgroup(r, "/user.slice/user-0.slice", 5 * M, "max", "max", "max", "max");
    // root is exempt: no caps, and system.slice's weights.
    put(r, "sys/fs/cgroup/user.slice/user-0.slice/cpu.weight", "1000\n");
    put(
        r,
        "sys/fs/cgroup/user.slice/user-0.slice/io.weight",
        "default 200\n",
    );
    cgroup(r, "/docker.slice", 20 * M, "max", "314572800", "0", "max");
    cgroup(
        r,
        "/system.slice/system-t3\\x2dserve.slice",
        50 * M,
        "max",
        "max",
        "max",
        "max",
    );
    cgroup(
        r,
        "/system.slice/system-t3\\x2dserve.slice/t3-serve@alice.service",
        50 * M,
        "314572800",
        "419430400",
        "0",
        "max",
    );
    put(
        r,
        "run/contain/watchdog.json",
        r#"{"started": 1700000000, "kills_total": 2, "cgroups": {"/user.slice/user-1001.slice": {"watchdog_kills": 2, "oom_kills_seen": 1, "last_kill": 1700000100}}, "recent": [{"time": 1700000100, "uid": 1001, "user": "alice", "cgroup": "/user.slice/user-1001.slice", "pid": 4242, "comm": "ugrep", "usage": 629145600, "high": 629145600, "max": 734003200, "reason": "throttled"}]}"#,
    );
    // Written after the policy: the generator ran after the last edit.
    put(
        r,
        "run/contain/generator.json",
        r#"{"outcome": "applied", "sources": ["/etc/contain/policy.toml"], "errors": [], "units": [], "oomd_conf": null, "oomd_wants": null}"#,
    );
    dir
}

fn containctl(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_containctl"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

// ---------- status ----------

#[test]
fn status_lists_slices_biggest_first_with_caps_matching() {
    let h = host();
    let o = containctl(h.path(), &["status", "--json"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v = json(&o);
    let slices = v["slices"].as_array().unwrap();
    let units: Vec<&str> = slices.iter().map(|s| s["unit"].as_str().unwrap()).collect();
    assert_eq!(
        units,
        [
            "user-1001.slice",
            "user-1002.slice",
            "t3-serve@alice.service",
            "user-0.slice"
        ]
    );
    let alice = &slices[0];
    assert_eq!(alice["user"], "alice");
    assert_eq!(alice["memory_current"], 500 * M);
    assert_eq!(alice["memory_max"], 734003200u64);
    assert_eq!(alice["memory_high"], 629145600u64);
    assert_eq!(alice["pressure"]["full_avg10"], 9.25);
    assert_eq!(alice["oom_kill"], 1);
    assert_eq!(alice["watchdog_kills"], 2);
    assert_eq!(alice["caps_match"], true);
    // root is exempt: its slice must be uncapped.
    assert_eq!(slices[3]["caps_match"], true);
    assert_eq!(slices[3]["memory_max"], "max");
    let trees: Vec<&str> = v["trees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["cgroup"].as_str().unwrap())
        .collect();
    assert_eq!(
        trees,
        [
            "/user.slice",
            "/system.slice/system-t3\\x2dserve.slice",
            "/docker.slice"
        ]
    );
    assert!(
        v["trees"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["caps_match"] != false)
    );
    assert_eq!(v["escaped_containers"].as_array().unwrap().len(), 0);

    let text = stdout(&containctl(h.path(), &["status"]));
    let alice_line = text.lines().find(|l| l.starts_with("user-1001.slice")).unwrap();
    for cell in ["alice", "500M", "600M", "700M", "12.5/9.2", "7/512", "ok"] {
        assert!(
            alice_line.contains(cell),
            "{cell} missing in {alice_line:?}\n{text}"
        );
    }
    assert!(text.contains("watchdog: 2 runaway(s) ended"), "{text}");
}

#[test]
fn status_flags_drifted_caps_and_escaped_containers() {
    let h = host();
    let r = h.path();
    // bob's slice lost its ceiling (say, a stale runtime override), and someone ran a container
    // with --cgroup-parent=system.slice.
    put(r, "sys/fs/cgroup/user.slice/user-1002.slice/memory.max", "max\n");
    fs::create_dir_all(r.join("sys/fs/cgroup/system.slice/docker-0123abcd.scope")).unwrap();
    let o = containctl(r, &["status", "--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    let bob = v["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "bob")
        .unwrap();
    assert_eq!(bob["caps_match"], false);
    assert_eq!(bob["mismatches"][0]["property"], "MemoryMax");
    assert_eq!(bob["mismatches"][0]["live"], "infinity");
    assert_eq!(bob["mismatches"][0]["policy"], "800M");
    assert_eq!(v["escaped_containers"][0], "/system.slice/docker-0123abcd.scope");
    let text = stdout(&containctl(r, &["status"]));
    assert!(text.contains("MemoryMax infinity (policy 800M)"), "{text}");
    assert!(
        text.contains("/system.slice/docker-0123abcd.scope runs outside docker.slice"),
        "{text}"
    );
    assert!(text.contains("root-equivalent"), "{text}");
}

// ---------- metrics ----------

/// Parses with Prometheus's own Python client and returns `name{labels} value` lines, sorted.
fn prometheus_parse(text: &str) -> Vec<String> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    assert fam.documentation, fam.name
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out.append(f"{fam.type} {s.name}{{{labels}}} {s.value}")
print("\n".join(sorted(out)))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/deps.sh installs python3-prometheus-client)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn metrics_parse_with_prometheus_parser() {
    let h = host();
    let o = containctl(h.path(), &["metrics"]);
    assert_eq!(code(&o), 0);
    let text = stdout(&o);
    let samples = prometheus_parse(&text);
    let has = |line: &str| {
        assert!(
            samples.iter().any(|s| s == line),
            "{line} not in\n{}",
            samples.join("\n")
        )
    };
    has(
        r#"gauge contain_memory_current_bytes{cgroup="/user.slice/user-1001.slice",kind="user",unit="user-1001.slice",user="alice"} 524288000.0"#,
    );
    has(
        r#"gauge contain_memory_max_bytes{cgroup="/user.slice/user-0.slice",kind="user",unit="user-0.slice",user="root"} inf"#,
    );
    has(
        r#"gauge contain_memory_pressure_full_avg10_ratio{cgroup="/user.slice/user-1001.slice",kind="user",unit="user-1001.slice",user="alice"} 0.0925"#,
    );
    has(
        r#"gauge contain_io_pressure_full_avg10_ratio{cgroup="/user.slice/user-1001.slice",kind="user",unit="user-1001.slice",user="alice"} 0.375"#,
    );
    has(
        r#"counter contain_oom_kills_total{cgroup="/user.slice/user-1001.slice",kind="user",unit="user-1001.slice",user="alice"} 1.0"#,
    );
    // A backslash in a label value (systemd's escaping) survives the round trip.
    has(
        r#"gauge contain_memory_current_bytes{cgroup="/system.slice/system-t3\x2dserve.slice",kind="tree",unit="system-t3\x2dserve.slice",user=""} 52428800.0"#,
    );
    has(
        r#"gauge contain_caps_match{cgroup="/user.slice/user-1002.slice",kind="user",unit="user-1002.slice",user="bob"} 1.0"#,
    );
    has(r#"counter contain_watchdog_kills_total{} 2.0"#);
    has(r#"gauge contain_generator_outcome{outcome="applied"} 1.0"#);
    has(r#"gauge contain_generator_outcome{outcome="fallback"} 0.0"#);
    has(r#"gauge contain_escaped_containers{} 0.0"#);
    has(r#"gauge contain_policy_fits_ram{} 1.0"#);
    assert!(text.contains("# HELP contain_memory_current_bytes "));
    assert!(text.contains("# TYPE contain_oom_kills_total counter"));

    // --out writes the same text atomically.
    let out = h.path().join("collector/contain.prom");
    assert_eq!(
        code(&containctl(
            h.path(),
            &["metrics", "--out", out.to_str().unwrap()]
        )),
        0
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), text);
}

#[test]
fn metrics_show_a_fallback_and_a_drift() {
    let h = host();
    let r = h.path();
    put(
        r,
        "run/contain/generator.json",
        r#"{"outcome": "fallback", "sources": [], "errors": ["x:1:1: bad"], "units": []}"#,
    );
    put(r, "sys/fs/cgroup/user.slice/user-1002.slice/memory.max", "max\n");
    let samples = prometheus_parse(&stdout(&containctl(r, &["metrics"])));
    assert!(samples.contains(&r#"gauge contain_generator_outcome{outcome="fallback"} 1.0"#.to_string()));
    assert!(samples.contains(&r#"gauge contain_generator_errors{} 1.0"#.to_string()));
    assert!(samples.contains(
        &r#"gauge contain_caps_match{cgroup="/user.slice/user-1002.slice",kind="user",unit="user-1002.slice",user="bob"} 0.0"#
            .to_string()
    ));
}

// ---------- check ----------

#[test]
fn check_warns_about_names_nss_does_not_know_and_cpus_the_host_lacks() {
    let h = host();
    let r = h.path();
    let text = fs::read_to_string(workspace().join("tests/vm/policy.toml")).unwrap();
    put(
        r,
        "etc/contain/policy.toml",
        &format!(
            "{text}\n[[override]]\nuser = \"alcie\"\nmemory_max = \"700M\"\n\n[[override]]\ngroup = \"gpu-users\"\nallowed_cpus = \"64-127\"\n"
        ),
    );
    put(r, "sys/devices/system/cpu/online", "0-3\n");
    let o = containctl(r, &["check"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains("no user `alcie` is known to NSS, so this entry never applies"),
        "{out}"
    );
    assert!(
        out.contains("no group `gpu-users` is known to NSS, so this entry never applies"),
        "{out}"
    );
    assert!(
        out.contains("allowed_cpus = \"64-127\" names no CPU of this host (online: 0-3)"),
        "{out}"
    );
    assert!(!out.contains("every user and group the policy names"), "{out}");
}

/// A virtio disk (scheduler none, io.cost off) holding / and /home on a partition: the test
/// policy's io_weight does nothing there; io_latency_target or BFQ makes the IO protection real.
#[test]
fn check_says_whether_io_protection_works_on_the_disks() {
    let h = host();
    let r = h.path();
    put(
        r,
        "proc/self/mountinfo",
        "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n31 22 0:30 / /tmp rw - tmpfs tmpfs rw\n",
    );
    let disk = "sys/devices/pci0000:00/virtio2/block/vda";
    put(r, &format!("{disk}/dev"), "254:0\n");
    put(r, &format!("{disk}/queue/scheduler"), "[none] mq-deadline\n");
    put(r, &format!("{disk}/vda1/partition"), "1\n");
    fs::create_dir_all(r.join("sys/dev/block")).unwrap();
    std::os::unix::fs::symlink(
        "../../devices/pci0000:00/virtio2/block/vda/vda1",
        r.join("sys/dev/block/254:1"),
    )
    .unwrap();
    put(
        r,
        "sys/fs/cgroup/io.cost.qos",
        "254:0 enable=0 ctrl=auto rpct=0.00 rlat=250000 wpct=0.00 wlat=250000 min=1.00 max=10000.00\n",
    );
    // The test policy has io_weight alone.
    let text = fs::read_to_string(workspace().join("tests/vm/policy.toml")).unwrap();
    let o = containctl(r, &["check"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains(
            "vda (/, /home, /var; scheduler none, io.cost off): the policy's io_weight does nothing here"
        ),
        "{out}"
    );

    // io_latency_target, on a kernel with io.latency.
    let with_latency = text.replace("[system]\n", "[system]\nio_latency_target = \"50ms\"\n");
    assert_ne!(text, with_latency);
    put(r, "etc/contain/policy.toml", &with_latency);
    put(r, "sys/fs/cgroup/system.slice/io.max", "");
    put(r, "sys/fs/cgroup/system.slice/io.latency", "");
    let out = stdout(&containctl(r, &["check"]));
    assert!(!out.contains("does nothing here"), "{out}");
    assert!(
        out.contains("io_weight has no effect here (only BFQ or io.cost honour it); the IO protection in force is io_latency_target 50ms"),
        "{out}"
    );

    // The same on a kernel without it (Debian's): nothing protects system.slice.
    fs::remove_file(r.join("sys/fs/cgroup/system.slice/io.latency")).unwrap();
    let out = stdout(&containctl(r, &["check"]));
    assert!(
        out.contains("[system] io_latency_target = 50ms does nothing here: this kernel has no io.latency"),
        "{out}"
    );
    assert!(out.contains("nothing else protects system.slice's IO"), "{out}");

    // A per-user write cap works on any scheduler and kernel.
    let with_cap = text.replace("[users]\n", "[users]\nio_write_bandwidth_max = \"6656K\"\n");
    put(r, "etc/contain/policy.toml", &with_cap);
    let out = stdout(&containctl(r, &["check"]));
    assert!(
        out.contains("the IO protection in force is the per-user bandwidth caps"),
        "{out}"
    );

    // io_scheduler, put on the disk by `io-scheduler` (the kernel takes the write; a fixture
    // file just holds it).
    let with_bfq = text.replace("[system]\n", "[system]\nio_scheduler = \"bfq\"\n");
    assert_ne!(text, with_bfq);
    put(r, "etc/contain/policy.toml", &with_bfq);
    let out = stdout(&containctl(r, &["check"]));
    assert!(
        out.contains("vda (/, /home, /var; scheduler none, io.cost off): the policy's io_scheduler is bfq, not in force on this disk"),
        "{out}"
    );
    let o = containctl(r, &["io-scheduler"]);
    assert_eq!(
        code(&o),
        1,
        "a fixture file keeps what is written: {}",
        stdout(&o)
    );
    put(r, &format!("{disk}/queue/scheduler"), "mq-deadline [bfq] none\n");
    // system.slice was made before BFQ was loaded: systemd wrote io.weight alone.
    put(r, "sys/fs/cgroup/system.slice/io.weight", "default 200\n");
    put(r, "sys/fs/cgroup/system.slice/io.bfq.weight", "default 100\n");
    let o = containctl(r, &["io-scheduler"]);
    assert_eq!(stdout(&o), "vda (/, /home, /var): bfq already\n");
    assert_eq!(code(&o), 0);
    assert_eq!(
        fs::read_to_string(r.join("sys/fs/cgroup/system.slice/io.bfq.weight")).unwrap(),
        "default 109"
    );
    let out = stdout(&containctl(r, &["check"]));
    assert!(!out.contains("io_scheduler is bfq, not in force"), "{out}");
    assert!(
        out.contains(
            "vda (/, /home, /var; scheduler bfq, io.cost off): the policy's IO settings take effect"
        ),
        "{out}"
    );
}

#[test]
fn check_is_clean_on_a_well_set_host() {
    let h = host();
    let o = containctl(h.path(), &["check"]);
    let text = stdout(&o);
    assert_eq!(code(&o), 0, "{text}");
    assert!(text.contains("No problems found."), "{text}");
    assert!(
        text.contains("ok: the caps fit in RAM: 2 users × 800M = 1.6G (user.slice capped at 900M: 900M)"),
        "{text}"
    );
    assert!(
        text.contains("every user and group the policy names is known to NSS"),
        "{text}"
    );

    // docker.slice has no cgroup until the first container starts: nothing to compare yet.
    fs::remove_dir_all(h.path().join("sys/fs/cgroup/docker.slice")).unwrap();
    let o = containctl(h.path(), &["check"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v = json(&containctl(h.path(), &["status", "--json"]));
    let docker = v["trees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["unit"] == "docker.slice")
        .unwrap();
    assert_eq!(docker["caps_match"], serde_json::Value::Null);
}

#[test]
fn check_reports_pam_docker_and_oomd_problems_most_serious_first() {
    let h = host();
    let r = h.path();
    put(
        r,
        "etc/pam.d/common-session-noninteractive",
        &NONINTERACTIVE.replace("session\trequired\tpam_contain.so\n", ""),
    );
    put(
        r,
        "etc/pam.d/common-session",
        "session required pam_contain.so\nsession optional pam_systemd.so\n",
    );
    put(r, "etc/docker/daemon.json", "{\"bip\": \"10.0.0.1/24\",\n");
    fs::remove_file(r.join("proc/413/comm")).unwrap();
    let o = containctl(r, &["check", "--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    let findings = v["findings"].as_array().unwrap();
    let sev: Vec<&str> = findings.iter().map(|f| f["severity"].as_str().unwrap()).collect();
    let mut sorted = sev.clone();
    sorted.sort_by_key(|s| ["error", "warning", "info", "ok"].iter().position(|x| x == s));
    assert_eq!(sev, sorted, "most serious first");
    let find = |needle: &str| {
        findings
            .iter()
            .find(|f| f["what"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no finding with {needle:?} in {v:#}"))
    };
    let f = find("common-session-noninteractive does not run pam_contain");
    assert_eq!(f["severity"], "error");
    assert!(f["fix"].as_str().unwrap().contains("pam-auth-update"));
    assert_eq!(find("runs pam_contain before pam_systemd")["severity"], "error");
    let f = find("daemon.json: invalid JSON");
    assert_eq!(f["severity"], "error");
    assert_eq!(find("contain-watchdog is not running")["severity"], "warning");
}

#[test]
fn check_shows_the_seed_arithmetic_for_devvm_on_32g() {
    let h = host();
    let r = h.path();
    put(
        r,
        "proc/meminfo",
        "MemTotal:       33554432 kB\nSwapTotal:      14680064 kB\n",
    );
    let policy = workspace().join("examples/devvm.toml");
    let o = containctl(r, &["check", "--policy", policy.to_str().unwrap()]);
    let text = stdout(&o);
    assert_eq!(code(&o), 1, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("do not fit in RAM"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("warning: "), "{line}");
    assert!(line.contains("3 users × 16G = 48G"), "{line}");
    assert!(line.contains("> 32G RAM"), "{line}");
}

#[test]
fn check_warns_about_configurations_that_hang() {
    let h = host();
    let r = h.path();
    let text = fs::read_to_string(workspace().join("tests/vm/policy.toml")).unwrap();
    put(
        r,
        "etc/contain/policy.toml",
        &text.replace("[watchdog]\nenabled = true", "[watchdog]\nenabled = false"),
    );
    let o = containctl(r, &["check", "--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    let hang: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["what"].as_str().unwrap().contains("D state"))
        .collect();
    // [users], alice's and the ldaphpc group's overrides and the t3-serve tree all throttle below
    // their ceiling with no swap.
    assert_eq!(hang.len(), 4, "{v:#}");
    let users = hang[0]["what"].as_str().unwrap();
    assert!(
        users.starts_with("[users]: memory_high 600M < memory_max 800M with memory_swap_max = 0"),
        "{users}"
    );
    assert!(
        users.contains("systemd-oomd does not kill without reclaim activity"),
        "{users}"
    );
    assert!(
        hang[0]["fix"]
            .as_str()
            .unwrap()
            .contains("[watchdog] enabled = true")
    );
}

#[test]
fn check_lists_every_policy_error_with_its_place() {
    let h = host();
    let r = h.path();
    put(
        r,
        "etc/contain/policy.toml",
        "[users]\nmemory_max = \"16X\"\nmemroy_high = \"1G\"\n",
    );
    let o = containctl(r, &["check"]);
    let text = stdout(&o);
    assert_eq!(code(&o), 1, "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(errors.len() >= 2, "{text}");
    assert!(
        errors
            .iter()
            .any(|l| l.starts_with("error: /etc/contain/policy.toml:2:14: ")),
        "{text}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.starts_with("error: /etc/contain/policy.toml:3:1: ")),
        "{text}"
    );
    // Errors come before everything else.
    assert!(text.starts_with("error: "), "{text}");
}

#[test]
fn check_flags_a_policy_newer_than_the_generator_run() {
    let h = host();
    let r = h.path();
    let policy = r.join("etc/contain/policy.toml");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(&policy)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let text = stdout(&containctl(r, &["check"]));
    assert!(
        text.contains("warning: the policy changed after the generator last ran"),
        "{text}"
    );
}

// ---------- render and diff ----------

fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.push((rel, format!("-> {}", fs::read_link(&path).unwrap().display())));
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((rel, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The real contain-generator binary, built beside this one.
fn generator_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_containctl")).with_file_name("contain-generator");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args([
                "build",
                "-q",
                "-p",
                "contain-generator",
                "--bin",
                "contain-generator",
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    bin
}

#[test]
fn render_is_byte_identical_to_the_generator() {
    for policy in [
        "packaging/policy.toml",
        "examples/devvm.toml",
        "tests/vm/policy.toml",
    ] {
        // The generator and containctl look at the same fixture root (CONTAIN_ROOT / --root).
        let h = host(); // its /etc/passwd and /etc/group are the same fixtures
        put(
            h.path(),
            "etc/contain/policy.toml",
            &fs::read_to_string(workspace().join(policy)).unwrap(),
        );
        let gen_out = tempfile::tempdir().unwrap();
        let o = Command::new(generator_binary())
            .arg(gen_out.path().join("normal"))
            .env("CONTAIN_ROOT", h.path())
            .env("CONTAIN_LOG", "stderr")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ours = tempfile::tempdir().unwrap();
        let out = containctl(
            h.path(),
            &[
                "render",
                "--out",
                ours.path().join("normal").to_str().unwrap(),
                "--oomd-out",
                ours.path().join("oomd").to_str().unwrap(),
            ],
        );
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        let theirs = tree(&gen_out.path().join("normal"));
        assert!(theirs.len() >= 5, "{theirs:?}");
        assert_eq!(tree(&ours.path().join("normal")), theirs, "{policy}");
        assert_eq!(
            tree(&ours.path().join("oomd")),
            tree(&h.path().join("run/systemd/oomd.conf.d"))
        );
    }
}

#[test]
fn diff_compares_with_the_live_generator_output() {
    let h = host();
    let r = h.path();
    let live = r.join("run/systemd/generator");
    let oomd = r.join("run/systemd/oomd.conf.d");
    // Nothing live yet: every file the policy renders is missing.
    let o = containctl(r, &["diff", "--json"]);
    assert_eq!(code(&o), 1);
    assert!(
        json(&o)
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "missing")
    );

    // Live = what the generator wrote for this policy (render is the generator's code, tested above).
    let rendered = containctl(
        r,
        &[
            "render",
            "--out",
            live.to_str().unwrap(),
            "--oomd-out",
            oomd.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&rendered), 0);
    let same = containctl(r, &["diff", "--json"]);
    assert_eq!(code(&same), 0, "{}", stdout(&same));
    assert!(
        json(&same)
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "same")
    );

    // An edit to a live drop-in, a stale per-user drop-in, a missing oomd drop-in.
    let root = live.join("user-0.slice.d/31-contain-user.conf");
    let text = fs::read_to_string(&root)
        .unwrap()
        .replace("MemoryMax=infinity", "MemoryMax=650M");
    fs::write(&root, text).unwrap();
    put(
        &live,
        "user-4242.slice.d/31-contain-user.conf",
        "[Slice]\nMemoryMax=1G\n",
    );
    put(&live, "user-4242.slice.d/10-other.conf", "[Slice]\n");
    fs::remove_file(oomd.join("50-contain.conf")).unwrap();
    let o = containctl(r, &["diff", "--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    let state = |p: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == p)
            .map(|d| d["state"].as_str().unwrap().to_string())
    };
    for (path, want) in [
        (
            "/run/systemd/generator/user-0.slice.d/31-contain-user.conf",
            Some("changed"),
        ),
        (
            "/run/systemd/generator/user-4242.slice.d/31-contain-user.conf",
            Some("stale"),
        ),
        // Not contain's file.
        ("/run/systemd/generator/user-4242.slice.d/10-other.conf", None),
        ("/run/systemd/oomd.conf.d/50-contain.conf", Some("missing")),
    ] {
        assert_eq!(state(path).as_deref(), want, "{path}");
    }
    let text = stdout(&containctl(r, &["diff"]));
    assert!(text.contains("-MemoryMax=650M\n+MemoryMax=infinity\n"), "{text}");
}

// ---------- explain ----------

#[test]
fn explain_names_the_rule_behind_each_value() {
    let h = host();
    let o = containctl(h.path(), &["explain", "alice"]);
    assert_eq!(code(&o), 0);
    let text = stdout(&o);
    assert!(text.contains("alice (uid 1001"), "{text}");
    assert!(text.contains("user-1001.slice"), "{text}");
    let line = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .unwrap_or_else(|| panic!("{p}: {text}"))
    };
    assert!(
        line("MemoryMax").contains("700M  from [[override]] at /etc/contain/policy.toml:"),
        "{text}"
    );
    assert!(line("MemoryHigh").contains("600M  from [users]"), "{text}");
    assert!(line("TasksMax").contains("512  from [users]"), "{text}");

    let v = json(&containctl(h.path(), &["explain", "bob", "--json"]));
    assert_eq!(v["uid"], 1002);
    assert_eq!(v["limits"][1]["property"], "MemoryMax");
    assert_eq!(v["limits"][1]["value"], "800M");
    assert_eq!(v["never_denied"], false);

    let root = stdout(&containctl(h.path(), &["explain", "root"]));
    assert!(root.contains("Not capped: root is never capped."), "{root}");
    assert!(
        root.contains("CPUWeight  1000  from [system] (exempt accounts weigh as system.slice)"),
        "{root}"
    );
    let daemon = stdout(&containctl(h.path(), &["explain", "daemon"]));
    assert!(daemon.contains("system account"), "{daemon}");
    let admin = stdout(&containctl(h.path(), &["explain", "1000"]));
    assert!(admin.contains("never denied"), "{admin}");

    assert_eq!(code(&containctl(h.path(), &["explain", "mallory"])), 2);

    // IO caps: the rate and the paths, with the rule.
    let text = fs::read_to_string(workspace().join("tests/vm/policy.toml")).unwrap();
    let with_io = text.replace(
        "io_weight = 100\n",
        "io_weight = 100\nio_write_bandwidth_max = \"20M\"\n",
    );
    assert_ne!(text, with_io);
    put(h.path(), "etc/contain/policy.toml", &with_io);
    let bob = stdout(&containctl(h.path(), &["explain", "bob"]));
    let io = bob
        .lines()
        .find(|l| l.trim_start().starts_with("IOWriteBandwidthMax"))
        .unwrap_or_else(|| panic!("{bob}"));
    assert!(
        io.contains("20M/s on /, /home, /var, /tmp  from [users]"),
        "{bob}"
    );
}

// ---------- docker-setup ----------

#[test]
fn docker_setup_merges_keeps_keys_and_is_idempotent() {
    let h = host();
    let r = h.path();
    let path = r.join("etc/docker/daemon.json");
    let original = r#"{
  "features": {"buildkit": true},
  "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
  "insecure-registries": ["registry.local:5000"],
  "cgroup-parent": "system.slice"
}
"#;
    fs::write(&path, original).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let o = containctl(r, &["docker-setup"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("was `system.slice`"));
    let merged: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let keys: Vec<&String> = merged.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["features", "runtimes", "insecure-registries", "cgroup-parent"],
        "order kept"
    );
    assert_eq!(merged["cgroup-parent"], "docker.slice");
    assert_eq!(merged["runtimes"]["nvidia"]["path"], "nvidia-container-runtime");
    assert_eq!(merged["insecure-registries"][0], "registry.local:5000");
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // Idempotent: a second run does not rewrite the file.
    let before = fs::read(&path).unwrap();
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());
    let o = containctl(r, &["docker-setup"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("already routes"));
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
        inode
    );
}

#[test]
fn docker_setup_keep_other_never_replaces_the_admins_cgroup_parent() {
    let h = host();
    let r = h.path();
    let path = r.join("etc/docker/daemon.json");
    let admins = "{\n  \"cgroup-parent\": \"ci.slice\",\n  \"debug\": true\n}\n";
    fs::write(&path, admins).unwrap();
    let o = containctl(r, &["docker-setup", "--keep-other"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains("`ci.slice`, set by the admin: left alone"),
        "{}",
        stdout(&o)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), admins);
    // Without a cgroup-parent of its own, the key is added; other keys kept.
    fs::write(&path, "{\"debug\": true}\n").unwrap();
    let o = containctl(r, &["docker-setup", "--keep-other"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"debug": true, "cgroup-parent": "docker.slice"})
    );
}

#[test]
fn docker_setup_leaves_invalid_json_untouched() {
    let h = host();
    let r = h.path();
    let path = r.join("etc/docker/daemon.json");
    let broken = "{\"bip\": \"10.0.0.1/24\",, }\n";
    fs::write(&path, broken).unwrap();
    let o = containctl(r, &["docker-setup"]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("left untouched") && err.contains("invalid JSON at line 1"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), broken);
    // A JSON array is valid JSON but not a daemon.json.
    fs::write(&path, "[1]").unwrap();
    assert_eq!(code(&containctl(r, &["docker-setup"])), 1);
    assert_eq!(fs::read_to_string(&path).unwrap(), "[1]");
}

#[test]
fn docker_setup_creates_the_file_only_where_docker_is() {
    let h = host();
    let r = h.path();
    let path = r.join("etc/docker/daemon.json");
    fs::remove_file(&path).unwrap();
    let o = containctl(r, &["docker-setup"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"cgroup-parent": "docker.slice"}));

    fs::remove_file(&path).unwrap();
    fs::remove_file(r.join("usr/bin/dockerd")).unwrap();
    let o = containctl(r, &["docker-setup"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("nothing to do"));
    assert!(!path.exists());
    // --daemon-json names another file.
    let other = r.join("elsewhere.json");
    fs::write(&other, "{\"debug\": true}").unwrap();
    assert_eq!(
        code(&containctl(
            r,
            &["docker-setup", "--daemon-json", other.to_str().unwrap()]
        )),
        0
    );
    assert!(
        fs::read_to_string(&other)
            .unwrap()
            .contains("\"cgroup-parent\": \"docker.slice\"")
    );
}

// ---------- usage ----------

#[test]
fn usage_errors_exit_2() {
    let h = host();
    assert_eq!(code(&containctl(h.path(), &["frobnicate"])), 2);
    assert_eq!(code(&containctl(h.path(), &["explain"])), 2);
    assert_eq!(code(&containctl(h.path(), &["selftest", "--only", "c"])), 2);
    assert_eq!(code(&containctl(h.path(), &["--help"])), 0);
    // selftest refuses a fixture root: it only runs on a live systemd host.
    assert_eq!(code(&containctl(h.path(), &["selftest"])), 2);
}

// ---------- apply (against a fake systemd on a private bus) ----------

fn apply(root: &Path, bus: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_containctl"))
        .arg("--root")
        .arg(root)
        .arg("apply")
        .env(contain_systemd::BUS_ADDRESS_ENV, bus)
        .output()
        .unwrap()
}

#[test]
fn apply_reloads_sets_running_slices_and_reloads_oomd() {
    use contain_systemd::fake::FakeSystemd;
    let fake = FakeSystemd::start().expect("dbus-daemon (scripts/deps.sh installs dbus)");
    let h = host();
    let r = h.path();
    put(r, "sys/fs/cgroup/user.slice/user-1002.slice/memory.max", "max\n");
    let o = apply(r, fake.address());
    let text = stdout(&o);
    assert_eq!(code(&o), 0, "{text}{}", String::from_utf8_lossy(&o.stderr));
    let calls = fake.calls();
    let summary: Vec<(String, String)> = calls.iter().map(|c| (c.method.clone(), c.unit.clone())).collect();
    assert_eq!(
        summary,
        [
            ("Reload".to_string(), String::new()),
            ("SetUnitProperties".into(), "user-0.slice".into()),
            ("SetUnitProperties".into(), "user-1001.slice".into()),
            ("SetUnitProperties".into(), "user-1002.slice".into()),
            ("ReloadUnit".into(), "systemd-oomd.service".into()),
        ],
        "{calls:#?}"
    );
    let alice = &calls[2];
    assert_eq!(alice.detail, "runtime=true");
    assert_eq!(
        alice.properties,
        [
            "MemoryHigh=629145600",
            "MemoryMax=734003200",
            "MemorySwapMax=0",
            "TasksMax=512",
            "CPUWeight=100",
            "IOWeight=100",
            "CPUQuotaPerSecUSec=1500000",
            // The policy sets no IO cap: the empty array lifts one an earlier apply set.
            "IOReadBandwidthMax=",
            "IOWriteBandwidthMax="
        ]
    );
    // root is exempt: its running slice is uncapped and weighs as system.slice.
    assert_eq!(
        calls[1].properties,
        [
            "MemoryHigh=infinity",
            "MemoryMax=infinity",
            "MemorySwapMax=infinity",
            "TasksMax=infinity",
            "CPUWeight=1000",
            "IOWeight=200",
            "IOReadBandwidthMax=",
            "IOWriteBandwidthMax="
        ]
    );
    assert!(
        text.contains("user-1002.slice (bob): MemoryMax infinity → 800M"),
        "{text}"
    );
    assert!(
        text.contains("user-1001.slice (alice): caps already right"),
        "{text}"
    );
    assert!(text.contains("systemd-oomd reloaded"), "{text}");
}

#[test]
fn apply_refuses_an_invalid_policy_and_reports_a_dead_bus() {
    use contain_systemd::fake::{Answer, FakeSystemd};
    let fake = FakeSystemd::start().expect("dbus-daemon");
    let h = host();
    let r = h.path();
    put(r, "etc/contain/policy.toml", "[users]\nmemory_max = \"lots\"\n");
    let o = apply(r, fake.address());
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("the policy is invalid; nothing was applied"),
        "{}",
        stdout(&o)
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());

    put(
        r,
        "etc/contain/policy.toml",
        &fs::read_to_string(workspace().join("tests/vm/policy.toml")).unwrap(),
    );
    fake.answer(Answer::Refuse("Access denied".into()));
    let o = apply(r, fake.address());
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("daemon-reload failed: systemd refused"),
        "{}",
        stdout(&o)
    );
    let o = apply(r, "unix:path=/nonexistent/bus");
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("cannot connect to the system bus"),
        "{}",
        stdout(&o)
    );
}

//! The client against a real dbus-daemon serving a fake systemd. The bus address reaches the
//! client through `CONTAIN_SYSTEM_BUS_ADDRESS`, so these tests run one at a time in one test.

use contain_policy::Limits;
use contain_policy::value::{CpuQuota, CpuSet, IoBandwidth, Size, Tasks};
use contain_systemd::fake::{Answer, Call, FakeSystemd};
use contain_systemd::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

/// The names of this process's threads: a call must leave none behind, not even for a moment
/// (sshd forks right after PAM; a thread alive then can hold a lock the child needs).
fn threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| std::fs::read_to_string(e.path().join("comm")).unwrap_or_default())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Checks one recorded call: its method, unit and detail, then its properties in order.
fn assert_call(call: &Call, (method, unit, detail): (&str, &str, &str), properties: &[&str]) {
    assert_eq!(
        (call.method.as_str(), call.unit.as_str(), call.detail.as_str()),
        (method, unit, detail),
        "{call:?}"
    );
    assert_eq!(call.properties, properties, "{call:?}");
}

#[test]
fn calls_reach_systemd_as_systemctl_would_send_them() {
    let fake = match FakeSystemd::start() {
        Ok(f) => f,
        Err(e) => panic!("dbus-daemon is needed for this test (scripts/deps.sh installs it): {e}"),
    };
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe { std::env::set_var(BUS_ADDRESS_ENV, fake.address()) };

    // SetUnitProperties with every kind of value.
    let limits = Limits {
        memory_high: Some(Size::Permyriad(4000)),
        memory_max: Some(Size::Bytes(16 << 30)),
        memory_swap_max: Some(Size::Bytes(0)),
        tasks_max: Some(Tasks::Infinity),
        cpu_weight: Some(100),
        io_weight: None,
        cpu_quota: Some(CpuQuota::Permyriad(15_000)),
        allowed_cpus: Some(CpuSet::parse("0-1,9").unwrap()),
        io_read_bandwidth_max: None,
        io_write_bandwidth_max: Some(IoBandwidth {
            bytes_per_sec: Some(20 << 20),
            devices: vec!["/".into(), "/home".into()],
        }),
    };
    let base = threads();
    set_unit_properties("user-1001.slice", true, &properties_for(&limits), T).expect("set properties");
    assert_eq!(threads(), base, "a call must leave no thread behind");
    let calls = fake.take_calls();
    assert_eq!(calls.len(), 1);
    assert_call(
        &calls[0],
        ("SetUnitProperties", "user-1001.slice", "runtime=true"),
        &[
            "MemoryHighScale=1717986918",
            "MemoryMax=17179869184",
            "MemorySwapMax=0",
            "TasksMax=infinity",
            "CPUWeight=100",
            "CPUQuotaPerSecUSec=1500000",
            // `ay`: CPUs 0 and 1 in the first byte, 9 in the second.
            "AllowedCPUs=3 2",
            // `a(st)`: a path and bytes per second per device.
            "IOWriteBandwidthMax=/:20971520 /home:20971520",
        ],
    );

    // Reading a property back.
    let max = unit_property_u64(
        "user-1001.slice",
        "org.freedesktop.systemd1.Slice",
        "MemoryMax",
        T,
    );
    assert_eq!(max, Ok(16 << 30));
    assert_eq!(threads(), base, "read");
    let err = unit_property_u64(
        "user-4242.slice",
        "org.freedesktop.systemd1.Slice",
        "MemoryMax",
        T,
    )
    .expect_err("no such unit");
    assert_eq!(threads(), base, "no such unit");
    assert!(matches!(err, Error::Method { .. }), "{err:?}");
    fake.take_calls();

    // A scope: the job's end is awaited, and the right job's.
    start_transient_scope("contain-1001-77.scope", "user-1001.slice", &[77], &[], T).expect("scope");
    assert_eq!(threads(), base, "scope");
    let calls = fake.take_calls();
    assert_call(
        &calls[0],
        ("StartTransientUnit", "contain-1001-77.scope", "mode=replace"),
        &[
            "Slice=user-1001.slice",
            "PIDs=77",
            "Description=contain: session in user-1001.slice",
            "CollectMode=inactive-or-failed",
        ],
    );

    // A failed job is an error naming its result.
    fake.answer(Answer::JobResult("failed".into()));
    let err = start_transient_scope("contain-1001-78.scope", "user-1001.slice", &[78], &[], T)
        .expect_err("job failed");
    assert_eq!(threads(), base, "job failed");
    assert_eq!(
        err,
        Error::JobFailed {
            unit: "contain-1001-78.scope".into(),
            result: "failed".into()
        }
    );
    assert!(err.to_string().contains("`failed`"), "{err}");

    // A refusal carries systemd's error name and message.
    fake.answer(Answer::Refuse("Unit user-1001.slice not loaded.".into()));
    let err = set_unit_properties("user-1001.slice", true, &[], T).expect_err("refused");
    assert_eq!(threads(), base, "refused");
    assert_eq!(
        err,
        Error::Method {
            name: "org.freedesktop.DBus.Error.Failed".into(),
            message: "Unit user-1001.slice not loaded.".into()
        }
    );

    assert_eq!(
        fake.take_calls().len(),
        2,
        "the failed job and the refusal were both asked for"
    );

    // Another client forges JobRemoved with `failed` for each job, to this connection and to
    // all: only systemd's own signal counts.
    fake.answer(Answer::Done);
    fake.forge_job_removed(Some("failed"));
    start_transient_scope("contain-1001-80.scope", "user-1001.slice", &[80], &[], T)
        .expect("a forged JobRemoved is ignored");
    assert_eq!(threads(), base, "forged");
    reload_unit("systemd-oomd.service", T).expect("a forged JobRemoved is ignored");
    fake.forge_job_removed(None);
    fake.take_calls();

    // daemon-reload and reload of a unit.
    fake.answer(Answer::Done);
    daemon_reload(T).expect("reload");
    assert_eq!(threads(), base, "reload");
    reload_unit("systemd-oomd.service", T).expect("reload unit");
    assert_eq!(threads(), base, "reload unit");
    let calls = fake.take_calls();
    assert_eq!(
        calls.iter().map(|c| c.method.as_str()).collect::<Vec<_>>(),
        ["Reload", "ReloadUnit"]
    );
    assert_eq!(calls[1].detail, "mode=replace");

    // An answer that never comes: the timeout bounds the call, and nothing stays behind.
    fake.answer(Answer::Never);
    let started = Instant::now();
    let err = start_transient_scope(
        "contain-1001-79.scope",
        "user-1001.slice",
        &[79],
        &[],
        Duration::from_millis(300),
    )
    .expect_err("timeout");
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(err.to_string().contains("300 ms"), "{err}");
    let err =
        set_unit_properties("user-1001.slice", true, &[], Duration::from_millis(200)).expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(threads(), base, "a timed-out call must leave no thread behind");

    // No bus at all.
    drop(fake);
    let dir = std::env::temp_dir().join(format!("contain-nobus-{}", std::process::id()));
    // SAFETY: as above.
    unsafe { std::env::set_var(BUS_ADDRESS_ENV, format!("unix:path={}/missing", dir.display())) };
    let err = set_unit_properties("user-1001.slice", true, &[], T).expect_err("no bus");
    assert!(matches!(err, Error::NoBus { .. }), "{err:?}");
    assert!(err.to_string().contains("is dbus running?"), "{err}");
}

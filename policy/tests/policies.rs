//! The policy language end to end: what valid policies mean, and the exact error for bad ones.

use contain_policy::value::{CpuQuota, Size, Span, Tasks};
use contain_policy::*;

/// The policy of these (path, text) files, in order.
fn files(files: &[(&str, &str)]) -> Result<Policy, Vec<Diagnostic>> {
    let sources: Vec<Source> = files.iter().map(|&(path, text)| Source { path, text }).collect();
    parse(&sources)
}

fn one(text: &str) -> Result<Policy, Vec<Diagnostic>> {
    files(&[("policy.toml", text)])
}

fn errors(text: &str) -> Vec<String> {
    match one(text) {
        Ok(_) => panic!("policy was accepted:\n{text}"),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

const DEVVM: &str = include_str!("../../examples/devvm.toml");

#[test]
fn shipped_default_parses_and_caps_users() {
    let p = builtin_default();
    assert_eq!(
        p,
        one(DEFAULT_POLICY)
            .map(|mut p| {
                p.sources = vec![DEFAULT_POLICY_NAME.into()];
                p
            })
            .unwrap()
    );
    assert_eq!(p.users.limits.memory_max, Some(Size::Permyriad(5000)));
    assert_eq!(p.users.limits.memory_swap_max, Some(Size::Bytes(0)));
    assert!(p.users.policing.enabled);
    assert!(p.watchdog.enabled);
    assert!(p.watchdog.grace < p.oomd.pressure_duration);
    assert!(p.never_deny(0, "root", &[]));
    assert!(!p.never_deny(1001, "alice", &["alice"]));
    assert!(p.never_deny(1000, "admin", &["sudo"]));
}

#[test]
fn shipped_default_fits_small_and_large_hosts() {
    let p = builtin_default();
    for ram in [4u64 << 30, 512 << 30] {
        let agg = aggregate(&p, ram);
        assert!(agg.fits, "{agg}");
    }
}

#[test]
fn devvm_reproduces_the_seed() {
    let p = one(DEVVM).unwrap();
    let l = &p.users.limits;
    assert_eq!(
        (l.memory_high, l.memory_max, l.memory_swap_max),
        (
            Some(Size::Bytes(12 << 30)),
            Some(Size::Bytes(16 << 30)),
            Some(Size::Bytes(0))
        )
    );
    let t3 = &p.trees[0];
    assert_eq!(t3.service.as_deref(), Some("t3-serve@.service"));
    assert_eq!(t3.slice, "system-t3\\x2dserve.slice");
    assert_eq!(t3.limits.memory_max, Some(Size::Bytes(16 << 30)));
    assert_eq!(p.docker.limits.memory_max, Some(Size::Bytes(8 << 30)));
    assert_eq!((p.system.cpu_weight, p.system.io_weight), (Some(200), Some(200)));
    assert_eq!(p.oomd.pressure_duration, Span(20_000));
    assert_eq!(p.oomd.swap_used_limit.to_string(), "80%");
}

#[test]
fn seed_caps_do_not_fit_in_32g() {
    let p = one(DEVVM).unwrap();
    let agg = aggregate(&p, 32 << 30);
    assert!(!agg.fits);
    let text = agg.to_string();
    assert!(text.contains("3 users × 16G = 48G"), "{text}");
    assert!(text.contains("3 t3-serve × 16G = 48G"), "{text}");
    assert!(text.ends_with("= 106G > 32G RAM"), "{text}");
}

#[test]
fn aggregate_cap_on_user_slice_bounds_the_user_term() {
    let p = one("[users]\nmemory_max = \"16G\"\n[user_slice]\nmemory_max = \"20G\"\n[capacity]\nheavy_users = 3\n[system]\nreserve = \"2G\"\n").unwrap();
    let agg = aggregate(&p, 32 << 30);
    assert!(agg.fits, "{agg}");
    assert_eq!(agg.total, Some(22 << 30));
    assert!(agg.to_string().contains("user.slice capped at 20G"));
}

#[test]
fn uncapped_users_never_fit() {
    let p = one("[users]\ncaps = false\ncpu_weight = 100\n").unwrap();
    let agg = aggregate(&p, 32 << 30);
    assert!(!agg.fits);
    assert!(agg.to_string().contains("unlimited"));
}

#[test]
fn overrides_resolve_by_group_then_user() {
    let p = one(r#"
[users]
memory_high = "1G"
memory_max = "2G"
[[override]]
group = "hpc"
memory_high = "3G"
memory_max = "4G"
[[override]]
user = "alice"
memory_max = "5G"
[[override]]
uid = 1003
tasks_max = "infinity"
"#)
    .unwrap();
    let alice = p.limits_for(1001, "alice", &["alice", "hpc"]).unwrap();
    assert_eq!(alice.memory_high, Some(Size::Bytes(3 << 30)));
    assert_eq!(alice.memory_max, Some(Size::Bytes(5 << 30)));
    let bob = p.limits_for(1002, "bob", &["bob"]).unwrap();
    assert_eq!(bob.memory_max, Some(Size::Bytes(2 << 30)));
    let carol = p.limits_for(1003, "carol", &[]).unwrap();
    assert_eq!(carol.tasks_max, Some(Tasks::Infinity));
    match p.resolve(1001, "alice", &["hpc"]) {
        Resolution::Capped(eff) => {
            assert!(matches!(eff.memory_max.unwrap().rule, Rule::Override(ref o) if o.line == 9));
            assert!(matches!(eff.memory_high.unwrap().rule, Rule::Override(ref o) if o.line == 5));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn root_system_accounts_and_listed_users_are_exempt() {
    let p = one("[users]\nmemory_max = \"2G\"\nexempt_users = [\"ci\", 4242]\n").unwrap();
    assert_eq!(p.exemption(0, "root"), Some(Exemption::Root));
    assert!(p.limits_for(999, "daemon", &[]).is_none());
    assert!(p.limits_for(1500, "ci", &[]).is_none());
    assert!(p.limits_for(4242, "x", &[]).is_none());
    assert!(p.limits_for(1000, "admin", &[]).is_some());
}

#[test]
fn dropins_merge_in_order_and_overrides_accumulate() {
    let main = "[users]\nmemory_high = \"1G\"\nmemory_max = \"2G\"\n[[override]]\nuser = \"alice\"\nmemory_max = \"3G\"\n";
    let extra = "[users]\nmemory_max = \"4G\"\n[[override]]\nuser = \"bob\"\nmemory_max = \"5G\"\n";
    let p = files(&[("policy.toml", main), ("policy.d/10-big.toml", extra)]).unwrap();
    assert_eq!(p.users.limits.memory_high, Some(Size::Bytes(1 << 30)));
    assert_eq!(p.users.limits.memory_max, Some(Size::Bytes(4 << 30)));
    assert_eq!(p.overrides.len(), 2);
    assert_eq!(&*p.overrides[1].origin.file, "policy.d/10-big.toml");
}

#[test]
fn duplicate_override_across_files_names_both_places() {
    let a = "[[override]]\nuser = \"alice\"\nmemory_max = \"3G\"\n";
    let b = "\n[[override]]\nuser = \"alice\"\nmemory_max = \"5G\"\n";
    let err = files(&[("a.toml", a), ("b.toml", b)]).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err[0].to_string(),
        "b.toml:2:1: a second override for user alice\n  help: the first is at a.toml:1:1; merge them into one"
    );
}

#[test]
fn all_errors_are_collected() {
    let e = errors(
        "[users]\nmemroy_max = \"1G\"\ncpu_weight = 0\n[system]\npolice = true\n[oomd]\nswap_used_limit = \"120%\"\n",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
}

/// Each hostile or malformed policy and the exact first error it must give.
#[test]
fn malformed_policies_give_exact_errors() {
    let huge = format!("[users]\nmemory_max = {}\n", "9".repeat(40));
    let deep = format!("x = {}1{}\n", "[".repeat(200), "]".repeat(200));
    let long_name = format!(
        "[[override]]\nuser = \"{}\"\nmemory_max = \"1G\"\n",
        "a".repeat(300)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown key with suggestion", "[users]\nmemroy_max = \"1G\"\n".into(),
         "policy.toml:2:1: unknown key `memroy_max` in [users]\n  help: did you mean `memory_max`? known keys: memory_high, memory_max, memory_swap_max, tasks_max, cpu_weight, io_weight, cpu_quota, allowed_cpus, io_read_bandwidth_max, io_write_bandwidth_max, io_devices, caps, exempt_uid_below, exempt_users, police, pressure_limit"),
        ("unknown section", "[user]\nmemory_max = \"1G\"\n".into(),
         "policy.toml:1:2: unknown key `user` in the policy\n  help: did you mean `users`? known keys: users, user_slice, override, trees, docker, system, oomd, watchdog, login, capacity"),
        ("wrong type", "[users]\nmemory_max = true\n".into(),
         "policy.toml:2:14: `memory_max` in [users] must be a size such as \"12G\", \"75%\", \"infinity\" or bytes, not a boolean"),
        ("float size", "[users]\nmemory_max = 1.5\n".into(),
         "policy.toml:2:14: `memory_max` in [users] must be a size such as \"12G\", \"75%\", \"infinity\" or bytes, not a float"),
        ("bad suffix", "[users]\nmemory_max = \"12X\"\n".into(),
         "policy.toml:2:14: `memory_max` in [users]: unknown size suffix `X`; use K, M, G, T, P or E (base 1024), `N%` or `infinity`"),
        ("high above max", "[users]\nmemory_high = \"16G\"\nmemory_max = \"12G\"\n".into(),
         "policy.toml:2:15: memory_high (16G) is above memory_max (12G) in [users]\n  help: memory_high is the throttling point and must be at or below memory_max"),
        ("percent over 100", "[users]\nmemory_max = \"150%\"\n".into(),
         "policy.toml:2:14: `memory_max` in [users]: `150%` is over 100%; a share of RAM is at most `100%`"),
        ("weight zero", "[users]\ncpu_weight = 0\n".into(),
         "policy.toml:2:14: `cpu_weight` in [users] is 0, out of range\n  help: use a whole number from 1 to 10000"),
        ("weight too big", "[system]\nio_weight = 10001\n".into(),
         "policy.toml:2:13: `io_weight` in [system] is 10001, out of range\n  help: use a whole number from 1 to 10000"),
        ("io cap as a share", "[users]\nmemory_max = \"1G\"\nio_write_bandwidth_max = \"50%\"\n".into(),
         "policy.toml:3:26: `io_write_bandwidth_max` in [users]: `50%` is a share; an IO cap is bytes per second such as \"20M\""),
        ("io cap of zero", "[users]\nio_read_bandwidth_max = \"0\"\n".into(),
         "policy.toml:2:25: `io_read_bandwidth_max` in [users]: `0` would stop all IO; write a rate above 0"),
        ("io cap unquoted", "[users]\nmemory_max = \"1G\"\nio_read_bandwidth_max = 20\n".into(),
         "policy.toml:3:25: `io_read_bandwidth_max` in [users] must be bytes per second such as \"20M\" or \"infinity\", not an integer"),
        ("relative io device", "[users]\nmemory_max = \"1G\"\nio_devices = [\"/\", \"home\"]\n".into(),
         "policy.toml:3:20: `io_devices` in [users]: `home` is not an absolute path"),
        ("io device with a space", "[system]\nio_devices = [\"/srv/a b\"]\n".into(),
         "policy.toml:2:15: `io_devices` in [system]: `/srv/a b` holds spaces, backslashes or control characters"),
        ("io latency of zero", "[system]\nio_latency_target = \"0ms\"\n".into(),
         "policy.toml:2:21: `io_latency_target` in [system] is 0; a latency target is above 0 (e.g. \"50ms\")"),
        ("io scheduler not one", "[system]\nio_scheduler = \"cfq\"\n".into(),
         "policy.toml:2:16: io_scheduler in [system] is `cfq`, not a block scheduler\n  help: one of bfq, mq-deadline, kyber, none; \"bfq\" makes io_weight real on any disk"),
        ("io latency not a span", "[system]\nio_latency_target = \"fast\"\n".into(),
         "policy.toml:2:21: `io_latency_target` in [system]: `fast` is not a time span; write e.g. `20s`, `500ms` or `1min`"),
        ("negative size", "[users]\nmemory_max = -1\n".into(),
         "policy.toml:2:14: `memory_max` in [users]: `-1` is negative; a size is 0 or more"),
        ("huge number", huge,
         "policy.toml:2:14: `memory_max` in [users]: `9999999999999999999999999999999999999999` bytes is larger than any memory"),
        ("huge suffixed", "[users]\nmemory_max = \"99999999999E\"\n".into(),
         "policy.toml:2:14: `memory_max` in [users]: `99999999999E` is larger than any memory (max 16E)"),
        ("system policed", "[system]\npolice = true\n".into(),
         "policy.toml:2:1: system.slice is never policed by oomd, so `police` is not allowed in [system]\n  help: system.slice holds sshd and the services: it is the operator's way in. Police the work trees instead"),
        ("tree polices system.slice", "[trees.web]\nservice = \"web.service\"\nmemory_max = \"1G\"\npolice = true\n".into(),
         "policy.toml:4:1: [trees.web] would police system.slice, which is never policed\n  help: police a template service (its instances get their own slice) or name a dedicated `slice`"),
        ("bad unit name", "[trees.web]\nservice = \"../../etc/passwd\"\nmemory_max = \"1G\"\n".into(),
         "policy.toml:2:11: service in [trees.web]: `../../etc/passwd` is not a .service unit name; it must end in `.service`"),
        ("path-like slice", "[trees.web]\nslice = \"a/b.slice\"\nmemory_max = \"1G\"\n".into(),
         "policy.toml:2:9: slice in [trees.web]: `a/b.slice` is not a valid unit name; use letters, digits and `:-_.\\` (escape others with systemd-escape)"),
        ("tree without unit", "[trees.web]\nmemory_max = \"1G\"\n".into(),
         "policy.toml:1:1: [trees.web] names neither a `service` nor a `slice`\n  help: e.g. service = \"t3-serve@.service\" or slice = \"build.slice\""),
        ("duplicate override", "[[override]]\nuser = \"a\"\nmemory_max = \"1G\"\n[[override]]\nuser = \"a\"\nmemory_max = \"2G\"\n".into(),
         "policy.toml:4:1: a second override for user a\n  help: the first is at policy.toml:1:1; merge them into one"),
        ("override two selectors", "[[override]]\nuser = \"a\"\ngroup = \"g\"\nmemory_max = \"1G\"\n".into(),
         "policy.toml:1:1: an override names exactly one of `user`, `uid` or `group`\n  help: split it into one [[override]] per user or group"),
        ("override as table", "[override]\nuser = \"a\"\n".into(),
         "policy.toml:1:1: `override` must be an array of tables\n  help: write each one as `[[override]]`, not `[override]`"),
        ("override sets nothing", "[[override]]\nuser = \"a\"\n".into(),
         "policy.toml:1:1: the override for user a sets no limit\n  help: set one of: memory_high, memory_max, memory_swap_max, tasks_max, cpu_weight, io_weight, cpu_quota, allowed_cpus, io_read_bandwidth_max, io_write_bandwidth_max, io_devices"),
        ("override breaks high<=max", "[users]\nmemory_high = \"2G\"\nmemory_max = \"3G\"\n[[override]]\nuser = \"a\"\nmemory_max = \"1G\"\n".into(),
         "policy.toml:4:1: for user a the effective memory_high (2G) would be above memory_max (1G)\n  help: set both memory_high and memory_max in this override"),
        ("unicode user name", "[[override]]\nuser = \"alïce\"\nmemory_max = \"1G\"\n".into(),
         "policy.toml:2:8: `alïce` is not a valid user or group name; names are letters, digits, `_`, `-`, `.`, `@` (no `/`, spaces or control characters)"),
        ("path-like user name", "[login]\nnever_deny_users = [\"../root\"]\n".into(),
         "policy.toml:2:21: `../root` is not a valid user or group name; names are letters, digits, `_`, `-`, `.`, `@` (no `/`, spaces or control characters)"),
        ("control char in name", "[login]\nnever_deny_groups = [\"wh\\u0007eel\"]\n".into(),
         "policy.toml:2:22: `wh\\u{7}eel` is not a valid user or group name; names are letters, digits, `_`, `-`, `.`, `@` (no `/`, spaces or control characters)"),
        ("too long name", long_name, ""),
        ("uid out of range", "[[override]]\nuid = 4294967296\nmemory_max = \"1G\"\n".into(),
         "policy.toml:2:7: `uid` in [[override]] is 4294967296, out of range\n  help: use a whole number from 0 to 4294967295"),
        ("negative uid", "[users]\nexempt_users = [-5]\n".into(),
         "policy.toml:2:17: `-5` is not a UID (0 to 4294967295)"),
        ("bad failure action", "[login]\non_failure = \"maybe\"\n".into(),
         "policy.toml:2:14: on_failure in [login] is `maybe`\n  help: use \"deny\" or \"allow\""),
        ("grace not below oomd", "[watchdog]\ngrace = \"30s\"\n".into(),
         "policy.toml:2:9: grace in [watchdog] (30s) is not shorter than pressure_duration in [oomd] (20s)\n  help: the watchdog must act before oomd would kill the whole session; use a grace below oomd's duration"),
        ("grace too short", "[watchdog]\ngrace = \"100ms\"\n".into(),
         "policy.toml:2:9: grace in [watchdog] is 100ms, below 1s\n  help: a short spike must be allowed to pass; use 5s to 15s"),
        ("on_kill relative", "[watchdog]\non_kill = \"notify.sh\"\n".into(),
         "policy.toml:2:11: on_kill in [watchdog] is `notify.sh`, not an absolute path\n  help: name the program to run after a kill by its full path, e.g. \"/usr/local/sbin/contain-on-kill\""),
        ("bad span", "[oomd]\npressure_duration = \"soon\"\n".into(),
         "policy.toml:2:21: `pressure_duration` in [oomd]: `soon` is not a time span; write e.g. `20s`, `500ms` or `1min`"),
        ("percent without %", "[oomd]\nswap_used_limit = \"80\"\n".into(),
         "policy.toml:2:19: `swap_used_limit` in [oomd]: `80` is not a percentage; write e.g. `60%`"),
        ("tasks zero", "[users]\ntasks_max = 0\n".into(),
         "policy.toml:2:13: `tasks_max` in [users]: a task limit of 0 would forbid every process; use at least 1"),
        ("section as value", "users = 5\n".into(),
         "policy.toml:1:9: `users` must be a table (`[users]`), not an integer"),
        ("datetime", "[users]\nmemory_max = 1979-05-27\n".into(),
         "policy.toml:2:14: `memory_max` in [users] must be a size such as \"12G\", \"75%\", \"infinity\" or bytes, not a date"),
        ("duplicate key", "[users]\nmemory_max = \"1G\"\nmemory_max = \"2G\"\n".into(),
         "policy.toml:3:1: invalid TOML: duplicate key"),
        ("not toml", "memory_max: 1G\n".into(), "policy.toml:1:13: invalid TOML: key with no value, expected `=`"),
        ("NUL byte", "[users]\nmemory_max = \"1G\0\"\n".into(),
         "policy.toml:2:17: the file contains a NUL byte\n  help: a policy is plain UTF-8 text"),
        ("deep nesting", deep, ""),
        ("cpu quota without %", "[users]\ncpu_quota = \"400\"\n".into(),
         "policy.toml:2:13: `cpu_quota` in [users]: `400` is not a CPU quota; write a share of one CPU such as `400%` (four CPUs), `50%` or `infinity`"),
        ("cpu quota as a number", "[users]\ncpu_quota = 4\n".into(),
         "policy.toml:2:13: `cpu_quota` in [users] must be a share of one CPU such as \"400%\" or \"infinity\", not an integer"),
        ("cpu quota zero", "[[override]]\nuser = \"a\"\ncpu_quota = \"0%\"\n".into(),
         "policy.toml:3:13: `cpu_quota` in [[override]]: `0%` is below 1%, the smallest quota the kernel enforces"),
        ("cpus backwards", "[trees.b]\nslice = \"build.slice\"\nallowed_cpus = \"3-1\"\n".into(),
         "policy.toml:3:16: `allowed_cpus` in [trees.b]: `3-1` in `3-1` runs backwards; write the lower CPU first"),
        ("cpus not a list", "[users]\nallowed_cpus = \"first four\"\n".into(),
         "policy.toml:2:16: `allowed_cpus` in [users]: `first` in `first four` is not a CPU number or range; write e.g. `0-3`, `0,2,4-7` or `all`"),
        ("heavy users zero", "[capacity]\nheavy_users = 0\n".into(),
         "policy.toml:2:15: `heavy_users` in [capacity] is 0, out of range\n  help: use a whole number from 1 to 100000"),
    ];
    assert!(cases.len() >= 30);
    let mut wrong = Vec::new();
    for (name, text, want) in &cases {
        let got = errors(text);
        let ok = match *want {
            "" => got[0].starts_with("policy.toml:"),
            w if w.ends_with(": ") => got[0].starts_with(w),
            w => got[0] == w,
        };
        if !ok {
            wrong.push(format!("{name}:\n  got:  {:?}\n  want: {want:?}", got[0]));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_10_megabyte_policy_is_handled() {
    let mut text = String::from("[users]\nmemory_max = \"1G\"\n");
    while text.len() < 10 << 20 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let started = std::time::Instant::now();
    assert!(one(&text).is_ok());
    // A guard against a scan that grows faster than the text, not a benchmark: generous for a
    // debug build on a loaded machine (4-7 s alone, 13.8 s beside two emulated guests).
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(20), "10 MB took {took:?}");
}

#[test]
fn on_kill_is_an_absolute_path_or_nothing() {
    let p =
        one("[users]\nmemory_max = \"1G\"\n[watchdog]\non_kill = \"/usr/local/sbin/tell-admins\"\n").unwrap();
    assert_eq!(p.watchdog.on_kill.as_deref(), Some("/usr/local/sbin/tell-admins"));
    assert_eq!(builtin_default().watchdog.on_kill, None);
    assert!(errors("[watchdog]\non_kill = 5\n")[0].starts_with("policy.toml:2:11: "));
}

const CAPS_HELP: &str = "\n  help: the built-in default policy applies instead, so caps stay on. Set a cap in [users] (e.g. memory_max = \"50%\"; any of memory_high, memory_max, memory_swap_max, tasks_max, cpu_quota, allowed_cpus, io_read_bandwidth_max, io_write_bandwidth_max), or write `caps = false` in [users] if users are really meant to run uncapped";

/// A policy emptied or truncated to its comments must not switch every cap off.
#[test]
fn a_policy_that_caps_no_user_is_refused() {
    let cases = [
        (
            "empty",
            "",
            "policy.toml:1:1: the policy is empty, so it caps no user",
        ),
        (
            "comments only",
            "# contain's policy\n#\n# [users]\n# memory_max = \"50%\"\n",
            "policy.toml:1:1: the policy is empty, so it caps no user",
        ),
        (
            "no [users]",
            "# the rest was cut\n[oomd]\npressure_limit = \"60%\"\n",
            "policy.toml:1:1: the policy has no [users] section, so it caps no user",
        ),
        (
            "[users] without limits",
            "# header\n[users]\nexempt_uid_below = 1000\npolice = true\n",
            "policy.toml:2:2: [users] caps no user: it sets no memory, task or CPU cap (or only `infinity`)",
        ),
        (
            "weights only",
            "[users]\ncpu_weight = 100\nio_weight = 100\n",
            "policy.toml:1:2: [users] caps no user: it sets no memory, task or CPU cap (or only `infinity`)",
        ),
        (
            "only infinity",
            "[users]\nmemory_max = \"infinity\"\ntasks_max = \"infinity\"\ncpu_quota = \"infinity\"\nallowed_cpus = \"all\"\n",
            "policy.toml:1:2: [users] caps no user: it sets no memory, task or CPU cap (or only `infinity`)",
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(errors(text), [format!("{want}{CAPS_HELP}")], "{name}");
    }
    // An empty main file with a capping drop-in is fine: the merged policy caps.
    let p = files(&[
        ("policy.toml", ""),
        ("policy.d/10-caps.toml", "[users]\nmemory_max = \"2G\"\n"),
    ]);
    assert!(p.is_ok(), "{p:?}");
    // Any one finite cap is enough.
    for cap in [
        "memory_swap_max = 0",
        "tasks_max = 512",
        "cpu_quota = \"200%\"",
        "allowed_cpus = \"0-1\"",
    ] {
        assert!(one(&format!("[users]\n{cap}\n")).is_ok(), "{cap}");
    }
}

#[test]
fn caps_false_is_the_explicit_way_to_leave_users_uncapped() {
    let p = one("# users run uncapped on purpose\n[users]\ncaps = false\n[[override]]\nuser = \"bigjob\"\nmemory_max = \"8G\"\n").unwrap();
    assert!(!p.users.caps);
    assert!(p.users.limits.is_empty());
    assert_eq!(
        p.limits_for(1001, "bigjob", &[]).unwrap().memory_max,
        Some(Size::Bytes(8 << 30))
    );
    assert!(builtin_default().users.caps);
    assert_eq!(
        errors("[users]\ncaps = false\nmemory_max = \"2G\"\n"),
        [
            "policy.toml:2:1: `caps = false` in [users], yet [users] sets a cap\n  help: remove `caps = false` to cap users, or remove memory_high, memory_max, memory_swap_max, tasks_max, cpu_quota, allowed_cpus, io_read_bandwidth_max, io_write_bandwidth_max from [users] to leave them uncapped"
        ]
    );
    assert_eq!(
        errors("[users]\ncaps = \"no\"\n")[0],
        "policy.toml:2:8: `caps` in [users] must be `true` or `false`, not a string"
    );
}

#[test]
fn cpu_quota_and_allowed_cpus_per_user_override_and_tree() {
    let p = one(r#"
[users]
memory_max = "2G"
cpu_quota = "400%"
allowed_cpus = "0-3"
[[override]]
user = "alice"
cpu_quota = "150%"
[[override]]
user = "admin"
cpu_quota = "infinity"
allowed_cpus = "all"
[trees.build]
slice = "build.slice"
cpu_quota = "800%"
allowed_cpus = "4-7,9"
"#)
    .unwrap();
    let alice = p.limits_for(1001, "alice", &[]).unwrap();
    assert_eq!(alice.cpu_quota, Some(CpuQuota::Permyriad(15_000)));
    assert_eq!(alice.allowed_cpus.unwrap().to_string(), "0-3");
    let admin = p.limits_for(1002, "admin", &[]).unwrap();
    assert_eq!(admin.cpu_quota, Some(CpuQuota::Infinity));
    assert!(admin.allowed_cpus.unwrap().is_all());
    let a = p.users.limits.assignments();
    assert!(a.contains(&("CPUQuota", "400%".into())), "{a:?}");
    assert!(a.contains(&("AllowedCPUs", "0-3".into())), "{a:?}");
    let tree = p.trees[0].limits.assignments();
    assert_eq!(
        &tree[tree.len() - 2..],
        [("CPUQuota", "800%".into()), ("AllowedCPUs", "4-7,9".into())]
    );
    // An exempt account's drop-in lifts them: empty assignments reset to no quota, every CPU.
    let r = render(&p, &[]);
    let root = &r
        .units
        .iter()
        .find(|(n, _)| n.starts_with("user-0.slice.d/"))
        .unwrap()
        .1;
    assert!(root.contains("\nCPUQuota=\nAllowedCPUs=\n"), "{root}");
}

/// IO caps per device: a user's bandwidth caps on each path's device (the default paths unless
/// io_devices names others), lifted for exempt accounts; io.latency on system.slice and on
/// exempt accounts' slices, which the users' IO then yields to.
#[test]
fn io_caps_and_latency_target_render_per_device() {
    let p = one(r#"
[users]
memory_max = "2G"
io_read_bandwidth_max = "40M"
io_write_bandwidth_max = "20M/s"
[[override]]
user = "alice"
io_write_bandwidth_max = "infinity"
[[override]]
user = "bob"
io_read_bandwidth_max = "1G"
io_devices = ["/srv", "/srv", "/"]
[system]
io_latency_target = "50ms"
io_devices = ["/"]
io_scheduler = "bfq"
"#)
    .unwrap();
    assert_eq!(p.system.io_scheduler.as_deref(), Some("bfq"));
    let a = p.users.limits.assignments();
    let io: Vec<_> = a.iter().filter(|(k, _)| k.starts_with("IO")).cloned().collect();
    assert_eq!(
        io,
        [
            ("IOReadBandwidthMax", "/ 40M".to_string()),
            ("IOReadBandwidthMax", "/home 40M".into()),
            ("IOReadBandwidthMax", "/var 40M".into()),
            ("IOReadBandwidthMax", "/tmp 40M".into()),
            ("IOWriteBandwidthMax", "/ 20M".into()),
            ("IOWriteBandwidthMax", "/home 20M".into()),
            ("IOWriteBandwidthMax", "/var 20M".into()),
            ("IOWriteBandwidthMax", "/tmp 20M".into()),
        ]
    );
    let alice = p.limits_for(1001, "alice", &[]).unwrap();
    assert_eq!(alice.io_write_bandwidth_max.unwrap().bytes_per_sec, None);
    let bob = p.limits_for(1002, "bob", &[]).unwrap();
    let read = bob.io_read_bandwidth_max.unwrap();
    assert_eq!(read.to_string(), "1G/s on /srv, /");
    assert_eq!(bob.io_write_bandwidth_max.unwrap().bytes_per_sec, Some(20 << 20));

    let r = render(&p, &[]);
    let unit = |prefix: &str| {
        r.units
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {:?}", r.units))
            .1
            .clone()
    };
    let system = unit("system.slice.d/");
    assert!(
        system.ends_with("\n[Slice]\nIODeviceLatencyTargetSec=/ 50ms\n"),
        "{system}"
    );
    // Root's slice: the template's caps lifted by empty assignments, and the latency target.
    let root = unit("user-0.slice.d/");
    assert!(
        root.ends_with("\nIOReadBandwidthMax=\nIOWriteBandwidthMax=\nIODeviceLatencyTargetSec=/ 50ms\n"),
        "{root}"
    );
    assert!(unit("user-.slice.d/").contains("\nIOWriteBandwidthMax=/tmp 20M\n"));
}

/// Trees that would cap sshd's or every user's slice as a whole, or write another section's
/// drop-in, are refused with their place.
#[test]
fn trees_on_shared_slices_or_colliding_dropins_are_refused() {
    const USERS: &str = "[users]\nmemory_max = \"2G\"\n";
    let cases = [
        (
            "[trees.all]\nslice = \"system.slice\"\nmemory_max = \"8G\"\n",
            "policy.toml:3:8: [trees.all] puts memory caps on system.slice as a whole\n  help: system.slice holds sshd or every user: capping it throttles the operator's way in and the watchdog would act on it. Name a dedicated `slice`, or a template `service` to cap each instance",
        ),
        (
            "[trees.u]\nslice = \"user.slice\"\nmemory_high = \"8G\"\n",
            "policy.toml:3:8: [trees.u] puts memory caps on user.slice as a whole\n  help: user.slice holds sshd or every user: capping it throttles the operator's way in and the watchdog would act on it. Name a dedicated `slice`, or a template `service` to cap each instance",
        ),
        (
            "[trees.root]\nslice = \"-.slice\"\nmemory_swap_max = 0\n",
            "policy.toml:3:8: [trees.root] puts memory caps on -.slice as a whole\n  help: -.slice holds sshd or every user: capping it throttles the operator's way in and the watchdog would act on it. Name a dedicated `slice`, or a template `service` to cap each instance",
        ),
        (
            "[trees.a]\nslice = \"build.slice\"\nmemory_max = \"8G\"\n[trees.b]\nslice = \"build.slice\"\ntasks_max = 100\n",
            "policy.toml:6:8: [trees.b] and [trees.a] at policy.toml:3:8 would both write build.slice.d/30-contain.conf\n  help: one would silently replace the other: merge them, or give the tree its own `slice`",
        ),
        (
            "[trees.a]\nservice = \"x@.service\"\npolice = true\n[trees.b]\nslice = \"system-x.slice\"\nmemory_max = \"8G\"\n",
            "policy.toml:6:8: [trees.b] and [trees.a] at policy.toml:3:8 would both write system-x.slice.d/30-contain.conf\n  help: one would silently replace the other: merge them, or give the tree its own `slice`",
        ),
        (
            "[trees.a]\nservice = \"x.service\"\nmemory_max = \"1G\"\n[trees.b]\nservice = \"x.service\"\ncpu_quota = \"100%\"\n",
            "policy.toml:6:8: [trees.b] and [trees.a] at policy.toml:3:8 would both write x.service.d/30-contain.conf\n  help: one would silently replace the other: merge them, or give the tree its own `slice`",
        ),
        (
            "[system]\ncpu_weight = 200\n[trees.s]\nslice = \"system.slice\"\ntasks_max = 100\n",
            "policy.toml:5:8: [trees.s] and [system] at policy.toml:3:2 would both write system.slice.d/30-contain.conf\n  help: one would silently replace the other: merge them, or give the tree its own `slice`",
        ),
        (
            "[user_slice]\nmemory_max = \"80%\"\n[trees.s]\nservice = \"w@.service\"\nslice = \"user.slice\"\npolice = true\n",
            "policy.toml:5:8: [trees.s] and [user_slice] at policy.toml:3:2 would both write user.slice.d/30-contain.conf\n  help: one would silently replace the other: merge them, or give the tree its own `slice`",
        ),
        (
            "[docker]\nmemory_max = \"20%\"\n[trees.d]\nslice = \"docker.slice\"\ntasks_max = 100\n",
            "policy.toml:5:8: [trees.d] and [docker] at policy.toml:3:2 would both write docker.slice.d/30-contain.conf\n  help: one would silently replace the other: merge them, or give the tree its own `slice`",
        ),
    ];
    for (text, want) in cases {
        let text = format!("{USERS}{text}");
        assert_eq!(errors(&text), [want], "{text}");
    }
    // The same slice for a template's instances and a plain tree elsewhere is fine, as are
    // non-memory settings on a shared slice nobody else writes.
    for ok in [
        "[trees.a]\nservice = \"x@.service\"\nmemory_max = \"1G\"\n[trees.b]\nslice = \"build.slice\"\nmemory_max = \"1G\"\n",
        "[trees.s]\nslice = \"system.slice\"\ntasks_max = 100\n",
        "[trees.w]\nservice = \"web.service\"\nmemory_max = \"1G\"\n",
    ] {
        let text = format!("{USERS}{ok}");
        assert!(one(&text).is_ok(), "{text}: {:?}", one(&text));
    }
}

#[test]
fn every_toml_error_in_a_file_is_reported_not_only_the_first() {
    let text = "[users]\nmemory_max = \"1G\"\nmemory_max = \"2G\"\ncpu_weight = \ntasks_max = 01\n[login\n";
    let got = errors(text);
    for line in [3, 4, 5, 6] {
        let place = format!("policy.toml:{line}:");
        assert!(
            got.iter()
                .any(|e| e.starts_with(&place) && e.contains("invalid TOML")),
            "no error on line {line}: {got:#?}"
        );
    }
}

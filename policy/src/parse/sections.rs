//! The policy's sections, each read and checked on its own from the merged tree, then the
//! checks across sections.

use super::*;

const ROOT_KEYS: [&str; 10] = [
    "users",
    "user_slice",
    "override",
    "trees",
    "docker",
    "system",
    "oomd",
    "watchdog",
    "login",
    "capacity",
];

pub(super) fn build(
    d: &mut Diags,
    root: &[(Cow<'_, str>, Node<'_>)],
    sources: &[Source],
    kept: Overrides,
) -> Policy {
    let top = Reader::new(d, "the policy", root, &ROOT_KEYS);
    let oomd = oomd(d, &top);
    let (users, users_reader) = users(d, &top);
    let user_slice = user_slice(d, &top);
    let overrides = overrides(d, &top, &users.limits, kept);
    let trees = trees(d, &top);
    let docker = docker(d, &top);
    let system = system(d, &top);
    let watchdog = watchdog(d, &top, &oomd);
    let login = login(d, &top);
    let capacity = capacity(d, &top);

    check_dropins(d, &top, &users, &user_slice, &trees, &docker, &system);
    // Last, and only for an otherwise valid policy: a typo in [users] gets its own error first.
    if d.out.is_empty() {
        check_users_capped(d, &top, &users_reader, &users);
    }

    Policy {
        users,
        user_slice,
        overrides,
        trees,
        docker,
        system,
        oomd,
        watchdog,
        login,
        capacity,
        sources: sources.iter().map(|s| s.path.to_string()).collect(),
    }
}

/// A reader of the section `[key]`, empty when it is not written.
fn section_reader<'n>(d: &mut Diags, top: &Reader<'n>, key: &str, known: &[&str]) -> Reader<'n> {
    let table = section(d, top, key);
    Reader::new(d, format!("[{key}]"), table, known)
}

/// A section's table, or none (an error if `key` is there but not a table).
fn section<'n>(d: &mut Diags, top: &Reader<'n>, key: &str) -> &'n [(Cow<'n, str>, Node<'n>)] {
    top.table(d, key).unwrap_or(&[])
}

/// The value at `key`, if written and of the shape `shape` takes; else an error saying how to
/// write it.
fn shaped<'n, T>(
    d: &mut Diags,
    top: &Reader<'n>,
    key: &str,
    shape: impl Fn(&'n Kind<'n>) -> Option<&'n T>,
    message: &str,
    help: &str,
) -> Option<&'n T> {
    let node = top.node(key)?;
    let found = shape(&node.kind);
    if found.is_none() {
        d.error(&node.at, message, Some(help.into()));
    }
    found
}

/// `[oomd]`: when systemd-oomd acts on a policed slice.
fn oomd(d: &mut Diags, top: &Reader) -> Oomd {
    let r = section_reader(
        d,
        top,
        "oomd",
        &["pressure_limit", "pressure_duration", "swap_used_limit"],
    );
    let oomd = Oomd {
        pressure_limit: r.percent(d, "pressure_limit").unwrap_or(Permyriad(6000)),
        pressure_duration: r.span(d, "pressure_duration").map_or(Span(20_000), |v| v.0),
        swap_used_limit: r.percent(d, "swap_used_limit").unwrap_or(Permyriad(8000)),
    };
    if oomd.pressure_duration < Span(1000) {
        let at = r.node("pressure_duration").map(|n| n.at).unwrap_or_default();
        d.error(
            &at,
            "pressure_duration in [oomd] is below 1s",
            Some("oomd needs at least 1s of pressure history".into()),
        );
    }
    oomd
}

/// `[users]`: every user's caps, who is exempt, and the reader for the checks at the end.
fn users<'n>(d: &mut Diags, top: &Reader<'n>) -> (Users, Reader<'n>) {
    let r = section_reader(
        d,
        top,
        "users",
        &with_keys(&[
            "caps",
            "exempt_uid_below",
            "exempt_users",
            "police",
            "pressure_limit",
        ]),
    );
    let users = Users {
        limits: r.limits(d),
        caps: r.bool(d, "caps").unwrap_or(true),
        exempt_uid_below: r
            .int(d, "exempt_uid_below", 0, u32::MAX as u64)
            .map_or(1000, |v| v as u32),
        exempt: r.users(d, "exempt_users").unwrap_or_default(),
        policing: r.policing(d),
    };
    (users, r)
}

/// `[user_slice]`: caps on all users together.
fn user_slice(d: &mut Diags, top: &Reader) -> Limits {
    section_reader(d, top, "user_slice", &LIMIT_KEYS).limits(d)
}

/// `[docker]`: containers' slice; enabled by being there.
fn docker(d: &mut Diags, top: &Reader) -> Docker {
    let docker_t = top.node("docker").map(|_| section(d, top, "docker"));
    let r = Reader::new(
        d,
        "[docker]",
        docker_t.unwrap_or(&[]),
        &with_keys(&["enabled", "police", "pressure_limit"]),
    );
    Docker {
        enabled: r.bool(d, "enabled").unwrap_or(docker_t.is_some()),
        limits: r.limits(d),
        policing: r.policing(d),
    }
}

/// The kernel's blk-mq schedulers, as /sys/block/*/queue/scheduler names them.
pub const IO_SCHEDULERS: [&str; 4] = ["bfq", "mq-deadline", "kyber", "none"];

/// `[system]`: system.slice's share, and what is kept back for it.
fn system(d: &mut Diags, top: &Reader) -> System {
    let r = section_reader(
        d,
        top,
        "system",
        &[
            "cpu_weight",
            "io_weight",
            "io_latency_target",
            "io_devices",
            "io_scheduler",
            "reserve",
            "police",
            "pressure_limit",
        ],
    );
    for key in ["police", "pressure_limit"] {
        if let Some(node) = r.node(key) {
            d.error(
                &node.key,
                format!("system.slice is never policed by oomd, so `{key}` is not allowed in [system]"),
                Some("system.slice holds sshd and the services: it is the operator's way in. Police the work trees instead".into()),
            );
        }
    }
    System {
        cpu_weight: r.weight(d, "cpu_weight"),
        io_weight: r.weight(d, "io_weight"),
        io_latency_target: match r.span(d, "io_latency_target") {
            Some((Span(0), at)) => {
                d.error(
                    at,
                    "`io_latency_target` in [system] is 0; a latency target is above 0 (e.g. \"50ms\")",
                    None,
                );
                None
            }
            other => other.map(|v| v.0),
        },
        io_devices: r.io_devices(d),
        io_scheduler: match r.text(d, "io_scheduler") {
            Some((name, _)) if IO_SCHEDULERS.contains(&name) => Some(name.to_string()),
            Some((name, at)) => {
                d.error(
                    at,
                    format!(
                        "io_scheduler in [system] is `{}`, not a block scheduler",
                        name.escape_debug()
                    ),
                    Some(format!(
                        "one of {}; \"bfq\" makes io_weight real on any disk",
                        IO_SCHEDULERS.join(", ")
                    )),
                );
                None
            }
            None => None,
        },
        reserve: r.size(d, "reserve").map_or(Size::Permyriad(1000), |v| v.0),
    }
}

/// `[watchdog]`: contain-watchdog's grace and hook.
fn watchdog(d: &mut Diags, top: &Reader, oomd: &Oomd) -> Watchdog {
    let r = section_reader(d, top, "watchdog", &["enabled", "grace", "on_kill"]);
    let grace = r.span(d, "grace");
    let on_kill = match r.text(d, "on_kill") {
        Some((path, at)) if !path.starts_with('/') || path.contains(char::is_control) => {
            d.error(
                at,
                format!("on_kill in [watchdog] is `{}`, not an absolute path", path.escape_debug()),
                Some("name the program to run after a kill by its full path, e.g. \"/usr/local/sbin/contain-on-kill\"".into()),
            );
            None
        }
        Some((path, _)) => Some(path.to_string()),
        None => None,
    };
    let watchdog = Watchdog {
        enabled: r.bool(d, "enabled").unwrap_or(true),
        grace: grace.map_or(Span(10_000), |v| v.0),
        on_kill,
    };
    if let Some((g, at)) = grace {
        if g < Span(1000) {
            d.error(
                at,
                format!("grace in [watchdog] is {g}, below 1s"),
                Some("a short spike must be allowed to pass; use 5s to 15s".into()),
            );
        } else if g >= oomd.pressure_duration {
            d.error(
                at,
                format!("grace in [watchdog] ({g}) is not shorter than pressure_duration in [oomd] ({})", oomd.pressure_duration),
                Some("the watchdog must act before oomd would kill the whole session; use a grace below oomd's duration".into()),
            );
        }
    }
    watchdog
}

/// `[login]`: what a failed placement does, and who always gets in.
fn login(d: &mut Diags, top: &Reader) -> Login {
    let r = section_reader(
        d,
        top,
        "login",
        &["on_failure", "never_deny_users", "never_deny_groups"],
    );
    let on_failure = match r.text(d, "on_failure") {
        None | Some(("deny", _)) => FailureAction::Deny,
        Some(("allow", _)) => FailureAction::Allow,
        Some((other, at)) => {
            d.error(
                at,
                format!("on_failure in [login] is `{other}`"),
                Some("use \"deny\" or \"allow\"".into()),
            );
            FailureAction::Deny
        }
    };
    let mut never_deny_users = r.users(d, "never_deny_users").unwrap_or_default();
    if !never_deny_users.iter().any(|u| u.matches(0, "root")) {
        never_deny_users.insert(0, UserRef::Name("root".into()));
    }
    Login {
        on_failure,
        never_deny_users,
        never_deny_groups: r.names(d, "never_deny_groups").unwrap_or_default(),
    }
}

/// `[capacity]`: how many heavy users the caps must fit in RAM for.
fn capacity(d: &mut Diags, top: &Reader) -> Capacity {
    let r = section_reader(d, top, "capacity", &["heavy_users"]);
    Capacity {
        heavy_users: r.int(d, "heavy_users", 1, 100_000).map_or(1, |v| v as u32),
    }
}

/// A policy that caps no user is refused like an invalid one, so that a file truncated to its
/// comments or emptied by mistake never switches containment off: the built-in default applies.
fn check_users_capped(d: &mut Diags, top: &Reader, r: &Reader, users: &Users) {
    let capped = caps_something(&users.limits);
    if users.caps == capped {
        return;
    }
    if !users.caps {
        let at = r.node("caps").map(|n| n.key).unwrap_or_default();
        d.error(
            &at,
            "`caps = false` in [users], yet [users] sets a cap",
            Some(format!(
                "remove `caps = false` to cap users, or remove {} from [users] to leave them uncapped",
                CAP_KEYS.join(", ")
            )),
        );
        return;
    }
    let help = format!(
        "the built-in default policy applies instead, so caps stay on. Set a cap in [users] \
         (e.g. memory_max = \"50%\"; any of {}), or write `caps = false` in [users] if users \
         are really meant to run uncapped",
        CAP_KEYS.join(", ")
    );
    match top.node("users") {
        Some(node) => d.error(
            &node.key,
            "[users] caps no user: it sets no memory, task or CPU cap (or only `infinity`)",
            Some(help),
        ),
        None if top.entries.is_empty() => d.error(
            &Loc::default(),
            "the policy is empty, so it caps no user",
            Some(help),
        ),
        None => d.error(
            &Loc::default(),
            "the policy has no [users] section, so it caps no user",
            Some(help),
        ),
    }
}

/// Slices that hold sshd, every user or everything: a memory cap on them as a whole would
/// throttle the operator's way in, and the watchdog would act on them.
const SHARED_SLICES: [&str; 3] = ["-.slice", "system.slice", "user.slice"];

/// Two sections rendering the same drop-in would silently overwrite one another: refused.
fn check_dropins(
    d: &mut Diags,
    top: &Reader,
    users: &Users,
    user_slice: &Limits,
    trees: &[Tree],
    docker: &Docker,
    system: &System,
) {
    let tree_nodes = top.table(d, "trees").unwrap_or(&[]);
    let tree_at = |name: &str| {
        tree_nodes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, n)| n.key)
            .unwrap_or_default()
    };
    // (unit, who writes it, where that is written)
    let mut owners: Vec<(&str, String, Option<Loc>)> = Vec::new();
    let mut section = |name: &str, unit: &'static str, writes: bool| {
        if writes {
            let at = top.node(name).map(|n| n.key);
            owners.push((unit, format!("[{name}]"), at));
        }
    };
    section("users", "user-.slice", !users.limits.is_empty());
    section(
        "user_slice",
        "user.slice",
        !user_slice.is_empty() || users.policing.enabled,
    );
    section(
        "system",
        "system.slice",
        system.cpu_weight.is_some() || system.io_weight.is_some(),
    );
    section("docker", "docker.slice", docker.enabled);
    for tree in trees {
        let at = tree_at(&tree.name);
        let name = format!("[trees.{}]", tree.name);
        let memory = tree.limits.memory_high.is_some()
            || tree.limits.memory_max.is_some()
            || tree.limits.memory_swap_max.is_some();
        if tree.service.is_none() && memory && SHARED_SLICES.contains(&tree.slice.as_str()) {
            d.error(
                &at,
                format!("{name} puts memory caps on {} as a whole", tree.slice),
                Some(format!(
                    "{} holds sshd or every user: capping it throttles the operator's way in and the watchdog would act on it. Name a dedicated `slice`, or a template `service` to cap each instance",
                    tree.slice
                )),
            );
        }
        for unit in crate::render::tree_units(tree) {
            match owners.iter().find(|(u, ..)| *u == unit) {
                Some((_, other, other_at)) => {
                    let other_at = other_at.map(|l| d.origin(&l).to_string());
                    let place = other_at.map(|o| format!(" at {o}")).unwrap_or_default();
                    d.error(
                        &at,
                        format!("{name} and {other}{place} would both write {unit}.d/{}", crate::render::DROPIN),
                        Some("one would silently replace the other: merge them, or give the tree its own `slice`".into()),
                    );
                }
                None => owners.push((unit, name.clone(), Some(at))),
            }
        }
    }
}

/// An override's selector as the duplicate check keys it: names borrowed from the tree, not
/// copied for 10,000 overrides.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Chosen<'a> {
    User(&'a str),
    Uid(u32),
    Group(&'a str),
}

impl Chosen<'_> {
    fn selector(self) -> Selector {
        match self {
            Chosen::User(name) => Selector::User(name.to_string()),
            Chosen::Uid(uid) => Selector::Uid(uid),
            Chosen::Group(name) => Selector::Group(name.to_string()),
        }
    }
}

/// As the selector it becomes says itself, without making it.
impl fmt::Display for Chosen<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chosen::User(n) => write!(f, "user {n}"),
            Chosen::Uid(u) => write!(f, "uid {u}"),
            Chosen::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// `[[override]]`: one user's, UID's or group's own caps, each selector once. All are checked;
/// they are kept only where `kept` asks for them.
fn overrides<'n>(d: &mut Diags, top: &Reader<'n>, defaults: &Limits, kept: Overrides) -> Vec<Override> {
    let array = |k: &'n Kind<'n>| match k {
        Kind::Array(_) | Kind::Tables(_) => Some(k),
        _ => None,
    };
    let Some(kind) = shaped(
        d,
        top,
        "override",
        array,
        "`override` must be an array of tables",
        "write each one as `[[override]]`, not `[override]`",
    ) else {
        return Vec::new();
    };
    // Each item's place and its table, or the item that is not a table.
    type Item<'n> = (&'n Loc, Result<&'n [(Cow<'n, str>, Node<'n>)], &'n Node<'n>>);
    let (count, items): (usize, Box<dyn Iterator<Item = Item<'n>>>) = match kind {
        Kind::Tables(tables) => (tables.len(), Box::new(tables.iter().map(|(at, t)| (at, Ok(t))))),
        Kind::Array(items) => (
            items.len(),
            Box::new(items.iter().map(|item| match &item.kind {
                Kind::Table(t) => (&item.at, Ok(t.as_slice())),
                _ => (&item.at, Err(item)),
            })),
        ),
        _ => return Vec::new(),
    };
    let mut out: Vec<Override> = match kept {
        Overrides::Kept => Vec::with_capacity(count),
        Overrides::Checked => Vec::new(),
    };
    let mut first_at: HashMap<Chosen, &Loc, BuildHasherDefault<Fnv>> =
        HashMap::with_capacity_and_hasher(count, Default::default());
    let known = with_keys(&["user", "uid", "group"]);
    for (at, table) in items {
        let entries = match table {
            Ok(entries) => entries,
            Err(item) => {
                d.error(
                    at,
                    format!("an override must be a table, not {}", item.kind.type_name()),
                    None,
                );
                continue;
            }
        };
        let r = Reader::new(d, "[[override]]", entries, &known);
        let user = r.account_name(d, "user").map(Chosen::User);
        let uid = r
            .int(d, "uid", 0, u32::MAX as u64)
            .map(|uid| Chosen::Uid(uid as u32));
        let group = r.account_name(d, "group").map(Chosen::Group);
        let limits = r.limits(d);
        let mut valid = [user, uid, group].into_iter().flatten();
        let key = match (valid.next(), valid.next()) {
            (Some(key), None) => key,
            (first, _) => {
                // Two valid, or none written (an invalid one has its own error).
                if first.is_some()
                    || r.node("user").is_none() && r.node("uid").is_none() && r.node("group").is_none()
                {
                    d.error(
                        at,
                        "an override names exactly one of `user`, `uid` or `group`",
                        Some("split it into one [[override]] per user or group".into()),
                    );
                }
                continue;
            }
        };
        match first_at.entry(key) {
            Entry::Occupied(first) => {
                let first = d.origin(first.get());
                let help = format!("the first is at {first}; merge them into one");
                d.error(at, format!("a second override for {key}"), Some(help));
                continue;
            }
            Entry::Vacant(slot) => {
                slot.insert(at);
            }
        }
        if limits.is_empty() {
            d.error(
                at,
                format!("the override for {key} sets no limit"),
                Some(format!("set one of: {}", LIMIT_KEYS.join(", "))),
            );
        }
        let high = limits.memory_high.or(defaults.memory_high);
        let max = limits.memory_max.or(defaults.memory_max);
        if let (Some(h), Some(m)) = (high, max)
            && exceeds(h, m)
            && (limits.memory_high.is_none() || limits.memory_max.is_none())
        {
            d.error(
                at,
                format!("for {key} the effective memory_high ({h}) would be above memory_max ({m})"),
                Some("set both memory_high and memory_max in this override".into()),
            );
        }
        if kept == Overrides::Kept {
            out.push(Override {
                selector: key.selector(),
                limits,
                origin: d.origin(at),
            });
        }
    }
    out
}

/// `[trees.NAME]`: a service's or slice's caps and policing.
fn trees<'n>(d: &mut Diags, top: &Reader<'n>) -> Vec<Tree> {
    let table = |k: &'n Kind<'n>| match k {
        Kind::Table(entries) => Some(entries),
        _ => None,
    };
    let Some(entries) = shaped(
        d,
        top,
        "trees",
        table,
        "`trees` must be a table of named trees",
        "write `[trees.NAME]`",
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, node) in entries {
        let Kind::Table(t) = &node.kind else {
            d.error(
                &node.at,
                format!("tree `{name}` must be a table (`[trees.{name}]`)"),
                None,
            );
            continue;
        };
        let section = format!("[trees.{name}]");
        let r = Reader::new(
            d,
            &section,
            t,
            &with_keys(&[
                "service",
                "slice",
                "police",
                "pressure_limit",
                "expected_instances",
            ]),
        );
        let service = r.text(d, "service");
        let slice = r.text(d, "slice");
        let limits = r.limits(d);
        let policing = r.policing(d);
        let expected_instances = r.int(d, "expected_instances", 1, 100_000).map_or(1, |v| v as u32);
        if let Some((s, at)) = service
            && let Err(msg) = unit::check_name(s, "service")
        {
            d.error(at, format!("service in {section}: {msg}"), None);
            continue;
        }
        if let Some((s, at)) = slice
            && let Err(msg) = unit::check_name(s, "slice")
        {
            d.error(at, format!("slice in {section}: {msg}"), None);
            continue;
        }
        let slice_name = match (service, slice) {
            (_, Some((s, _))) => s.to_string(),
            (Some((s, _)), None) => match unit::instance_slice(s) {
                Some(sl) => sl,
                None => "system.slice".to_string(),
            },
            (None, None) => {
                d.error(
                    &node.at,
                    format!("{section} names neither a `service` nor a `slice`"),
                    Some("e.g. service = \"t3-serve@.service\" or slice = \"build.slice\"".into()),
                );
                continue;
            }
        };
        if policing.enabled && matches!(slice_name.as_str(), "system.slice" | "-.slice") {
            let at = r.node("police").map_or(&node.at, |n| &n.key);
            d.error(
                at,
                format!("{section} would police {slice_name}, which is never policed"),
                Some("police a template service (its instances get their own slice) or name a dedicated `slice`".into()),
            );
        }
        if limits.is_empty() && !policing.enabled {
            d.error(
                &node.at,
                format!("{section} sets no limit and is not policed"),
                Some(format!("set one of: {}", LIMIT_KEYS.join(", "))),
            );
        }
        out.push(Tree {
            name: name.to_string(),
            service: service.map(|s| s.0.to_string()),
            slice: slice_name,
            limits,
            policing,
            expected_instances,
        });
    }
    out
}

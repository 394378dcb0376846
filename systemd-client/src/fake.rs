//! A fake `org.freedesktop.systemd1` on a private `dbus-daemon`, for tests (feature `fake`).
//!
//! It records every call with its properties, as systemctl would print them, and answers the
//! way it is told: done, a failed job, a D-Bus error, or never. On StartTransientUnit it can
//! write the scope's cgroup into a file shaped like /proc/self/cgroup, as systemd moving the
//! process would change the real one.

use contain_host::cgroupfs::slice_path;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use zbus::object_server::SignalEmitter;
use zbus::{ObjectServer, OwnedObjectPath, OwnedVariant, Variant, interface};

/// One call systemd received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `SetUnitProperties`, `StartTransientUnit`, `Reload`, `ReloadUnit`.
    pub method: String,
    pub unit: String,
    /// `runtime=true` for SetUnitProperties, the job mode for the others.
    pub detail: String,
    /// `Name=value`, in the order sent; `u64::MAX` shows as `infinity`.
    pub properties: Vec<String>,
}

impl Call {
    /// Whether the call sets the property `name`, to any value.
    pub fn sets(&self, name: &str) -> bool {
        self.properties
            .iter()
            .any(|p| p.split_once('=').is_some_and(|(n, _)| n == name))
    }
}

/// How the fake answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Success; jobs end with `done`.
    Done,
    /// Jobs end with this result (`failed`, `timeout`, …).
    JobResult(String),
    /// Methods fail with this D-Bus error message (as org.freedesktop.DBus.Error.Failed).
    Refuse(String),
    /// Methods never reply.
    Never,
}

#[derive(Debug)]
struct State {
    answer: Answer,
    calls: Vec<Call>,
    /// Where to write `0::/…/NAME.scope` when a scope starts.
    cgroup_file: Option<PathBuf>,
    next_job: u32,
    /// `MemoryMax`-style `t` properties per unit, as last set, for property reads.
    values: BTreeMap<(String, String), u64>,
    /// Before each job ends, another client on the bus sends JobRemoved for it with this result.
    forge: Option<String>,
    /// That other client: an ordinary connection with no name, as any local user could open.
    forger: Option<zbus::Connection>,
    /// A slice with a stop job queued (a user slice whose last unit just ended).
    stopping: Option<String>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A private bus with the fake on it. Dropping it stops the bus daemon.
pub struct FakeSystemd {
    address: String,
    daemon: Child,
    state: Shared,
    served: Option<std::thread::JoinHandle<()>>,
    /// Disconnected once the serving thread has returned.
    ended: std::sync::mpsc::Receiver<()>,
}

impl FakeSystemd {
    /// Starts `dbus-daemon --session` and the fake on it. Fails when dbus-daemon is missing.
    pub fn start() -> std::io::Result<FakeSystemd> {
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = daemon.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let address = line.trim().to_string();
        if address.is_empty() {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return Err(std::io::Error::other("dbus-daemon printed no address"));
        }
        let state: Shared = Arc::new(Mutex::new(State {
            answer: Answer::Done,
            calls: Vec::new(),
            cgroup_file: None,
            next_job: 1,
            values: BTreeMap::new(),
            forge: None,
            forger: None,
            stopping: None,
        }));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let served = FakeManager { state: state.clone() };
        let forger_state = state.clone();
        let bus = address.clone();
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let served = std::thread::Builder::new()
            .name("fake-systemd".into())
            .spawn(move || {
                let _ended = ended_tx;
                zbus::block_on(async move {
                    match zbus::connection::Builder::address(bus.as_str()).build().await {
                        Ok(forger) => lock(&forger_state).forger = Some(forger),
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("the second client: {e}")));
                            return;
                        }
                    }
                    let built = zbus::connection::Builder::address(bus.as_str())
                        .name("org.freedesktop.systemd1")
                        .serve_at("/org/freedesktop/systemd1", served)
                        .build()
                        .await;
                    match built {
                        Ok(connection) => {
                            let _ = ready_tx.send(Ok(()));
                            // Serve until the daemon goes away with the test.
                            let mut stream = zbus::MessageStream::from(&connection);
                            while let Some(Ok(_)) = std::future::poll_fn(|cx| {
                                futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
                            })
                            .await
                            {}
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                })
            })?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(FakeSystemd {
                address,
                daemon,
                state,
                served: Some(served),
                ended,
            }),
            Ok(Err(e)) => Err(std::io::Error::other(format!("fake systemd did not start: {e}"))),
            Err(_) => Err(std::io::Error::other("fake systemd did not start in 10 s")),
        }
    }

    /// The private bus's address, for `CONTAIN_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn answer(&self, answer: Answer) {
        lock(&self.state).answer = answer;
    }

    /// Another client on the bus forges JobRemoved for every job before it ends: one signal sent
    /// to the caller's connection and one broadcast, both with `result` (`None`: no forgery).
    /// The private bus runs the session policy, which lets any client send signals, as the
    /// system bus's default policy does.
    pub fn forge_job_removed(&self, result: Option<&str>) {
        lock(&self.state).forge = result.map(str::to_string);
    }

    /// Emulates a stop job queued for `slice`: a transaction that starts it is refused in
    /// mode `fail`, as systemd refuses it; mode `replace` replaces the stop job.
    pub fn slice_stopping(&self, slice: Option<&str>) {
        lock(&self.state).stopping = slice.map(str::to_string);
    }

    /// Emulates systemd moving the caller: on StartTransientUnit, writes the new cgroup here.
    pub fn move_into(&self, cgroup_file: Option<PathBuf>) {
        lock(&self.state).cgroup_file = cgroup_file;
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    /// Returns and forgets every call so far.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut lock(&self.state).calls)
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Joined, so that whatever the serving thread leaves (a runtime helper holding a call
        // never answered) has been started when the drop returns: tests counting threads take
        // their baseline after it, not before.
        if let Err(RecvTimeoutError::Disconnected) = self.ended.recv_timeout(Duration::from_secs(10))
            && let Some(served) = self.served.take()
        {
            let _ = served.join();
        }
    }
}

struct FakeManager {
    state: Shared,
}

fn show(value: &Variant<'_>) -> String {
    match value {
        Variant::U64(u64::MAX) => "infinity".into(),
        Variant::U64(v) => v.to_string(),
        Variant::U32(v) => v.to_string(),
        Variant::U8(v) => v.to_string(),
        Variant::Bool(v) => v.to_string(),
        Variant::Str(s) => s.to_string(),
        Variant::Array(a) => {
            let items: Vec<String> = a.iter().map(show).collect();
            items.join(" ")
        }
        Variant::Structure(s) => {
            let fields: Vec<String> = s.fields().iter().map(show).collect();
            fields.join(":")
        }
        other => format!("{other:?}"),
    }
}

impl FakeManager {
    fn record(&self, method: &str, unit: &str, detail: String, props: &[(String, OwnedVariant)]) -> Answer {
        let mut state = lock(&self.state);
        let properties = props
            .iter()
            .map(|(k, v)| format!("{k}={}", show(&Variant::from(v.clone()))))
            .collect();
        state.calls.push(Call {
            method: method.into(),
            unit: unit.into(),
            detail,
            properties,
        });
        for (k, v) in props {
            if let Variant::U64(n) = Variant::from(v.clone()) {
                state.values.insert((unit.to_string(), k.clone()), n);
            }
        }
        state.answer.clone()
    }

    async fn job(
        &self,
        emitter: &SignalEmitter<'_>,
        caller: Option<String>,
        unit: &str,
        answer: Answer,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let result = match answer {
            Answer::Done => "done".to_string(),
            Answer::JobResult(r) => r,
            Answer::Refuse(msg) => return Err(zbus::fdo::Error::Failed(msg)),
            Answer::Never => std::future::pending().await,
        };
        let id = {
            let mut state = lock(&self.state);
            state.next_job += 1;
            state.next_job
        };
        let path = OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}"))
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        // A job for another unit first: the client must wait for its own.
        let other = OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{}", id + 100_000))
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        FakeManager::job_removed(emitter, id + 100_000, other, "other.service", "done").await?;
        let (forged, forger) = {
            let state = lock(&self.state);
            (state.forge.clone(), state.forger.clone())
        };
        if let (Some(forged), Some(forger), Some(caller)) = (forged, forger, caller) {
            forge(&forger, &caller, id, &path, unit, &forged)
                .await
                .map_err(|e| zbus::fdo::Error::Failed(format!("fake: forging: {e}")))?;
        }
        FakeManager::job_removed(emitter, id, path.clone(), unit, &result).await?;
        Ok(path)
    }
}

/// Sends JobRemoved for `job` from `forger`, to `caller` and to everyone, and makes sure the bus
/// has routed both before the real one is sent (the bus handles one client's messages in order).
async fn forge(
    forger: &zbus::Connection,
    caller: &str,
    id: u32,
    job: &OwnedObjectPath,
    unit: &str,
    result: &str,
) -> zbus::Result<()> {
    const MANAGER: &str = "org.freedesktop.systemd1.Manager";
    let body = (id, job, unit, result);
    forger
        .emit_signal(
            Some(caller),
            "/org/freedesktop/systemd1",
            MANAGER,
            "JobRemoved",
            &body,
        )
        .await?;
    forger
        .emit_signal(
            None::<&str>,
            "/org/freedesktop/systemd1",
            MANAGER,
            "JobRemoved",
            &body,
        )
        .await?;
    forger
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "GetId",
            &(),
        )
        .await?;
    Ok(())
}

fn caller_of(header: &zbus::message::Header<'_>) -> Option<String> {
    header.sender().map(|s| s.to_string())
}

#[interface(name = "org.freedesktop.systemd1.Manager")]
impl FakeManager {
    async fn set_unit_properties(
        &self,
        name: String,
        runtime: bool,
        properties: Vec<(String, OwnedVariant)>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> zbus::fdo::Result<()> {
        match self.record(
            "SetUnitProperties",
            &name,
            format!("runtime={runtime}"),
            &properties,
        ) {
            Answer::Refuse(msg) => Err(zbus::fdo::Error::Failed(msg)),
            Answer::Never => std::future::pending().await,
            _ => {
                // The unit's object, so that its properties can be read back.
                let unit = FakeSlice {
                    unit: name.clone(),
                    state: self.state.clone(),
                };
                server.at(contain_policy::unit::object_path(&name), unit).await?;
                Ok(())
            }
        }
    }

    async fn start_transient_unit(
        &self,
        name: String,
        mode: String,
        properties: Vec<(String, OwnedVariant)>,
        _aux: Vec<(String, Vec<(String, OwnedVariant)>)>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let answer = self.record("StartTransientUnit", &name, format!("mode={mode}"), &properties);
        let slice = properties
            .iter()
            .find(|(k, _)| k == "Slice")
            .map(|(_, v)| show(&Variant::from(v.clone())));
        if let Some(slice) = &slice {
            let mut state = lock(&self.state);
            if state.stopping.as_ref() == Some(slice) {
                if mode == "fail" {
                    return Err(zbus::fdo::Error::Failed(format!(
                        "Transaction for {name}/start is destructive ({slice} has 'stop' job queued, but 'start' is included in transaction)."
                    )));
                }
                state.stopping = None;
            }
        }
        if answer == Answer::Done {
            let file = lock(&self.state).cgroup_file.clone();
            if let (Some(file), Some(slice)) = (file, slice) {
                let cgroup = Path::new("/").join(slice_path(&slice)).join(&name);
                std::fs::write(&file, format!("0::{}\n", cgroup.display()))
                    .map_err(|e| zbus::fdo::Error::Failed(format!("fake: {}: {e}", file.display())))?;
            }
        }
        self.job(&emitter, caller_of(&header), &name, answer).await
    }

    async fn reload(&self) -> zbus::fdo::Result<()> {
        match self.record("Reload", "", String::new(), &[]) {
            Answer::Refuse(msg) => Err(zbus::fdo::Error::Failed(msg)),
            Answer::Never => std::future::pending().await,
            _ => Ok(()),
        }
    }

    async fn reload_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        #[zbus(header)] header: zbus::message::Header<'_>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let answer = self.record("ReloadUnit", &name, format!("mode={mode}"), &[]);
        self.job(&emitter, caller_of(&header), &name, answer).await
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: OwnedObjectPath,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

/// A slice's memory and task properties as last set, under systemd's Slice interface.
struct FakeSlice {
    unit: String,
    state: Shared,
}

impl FakeSlice {
    fn value(&self, prop: &str) -> u64 {
        let state = lock(&self.state);
        state
            .values
            .get(&(self.unit.clone(), prop.to_string()))
            .copied()
            .unwrap_or(u64::MAX)
    }
}

#[interface(name = "org.freedesktop.systemd1.Slice")]
impl FakeSlice {
    #[zbus(property)]
    fn memory_high(&self) -> u64 {
        self.value("MemoryHigh")
    }

    #[zbus(property)]
    fn memory_max(&self) -> u64 {
        self.value("MemoryMax")
    }

    #[zbus(property)]
    fn memory_swap_max(&self) -> u64 {
        self.value("MemorySwapMax")
    }

    #[zbus(property)]
    fn tasks_max(&self) -> u64 {
        self.value("TasksMax")
    }
}

//! Blocking calls to systemd's manager over the system bus.
//!
//! Each call builds its own connection inside one `zbus::block_on` and drops it before
//! returning, all under one deadline: nothing is left running between calls, no helper thread
//! outlives a call. That is what a PAM module inside sshd needs, and it costs ~1 ms a call.
//!
//! The bus is the system bus, or the address in `CONTAIN_SYSTEM_BUS_ADDRESS` (tests point it at
//! a private dbus-daemon). The variable is read with `secure_getenv`, so it is ignored in a
//! setuid program such as `su`, where the caller controls the environment; for the same reason
//! `DBUS_SYSTEM_BUS_ADDRESS` is never read.

#[cfg(feature = "fake")]
pub mod fake;
mod property;

pub use property::{Property, Value, properties_for, scale_from_permyriad};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use std::fmt;
use std::future::{Future, poll_fn};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use zbus::{DBusError, OwnedObjectPath, Variant};

/// The environment variable naming another bus to talk to, for tests.
pub const BUS_ADDRESS_ENV: &str = "CONTAIN_SYSTEM_BUS_ADDRESS";
/// The system bus when nothing else is asked for.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// Why a call to systemd did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No connection to the bus: socket missing, refused, or authentication failed.
    NoBus { address: String, reason: String },
    /// The whole call, connection included, took longer than allowed.
    Timeout { what: String, after: Duration },
    /// systemd answered with a D-Bus error.
    Method { name: String, message: String },
    /// The job systemd queued ended with another result than `done`.
    JobFailed { unit: String, result: String },
    /// Anything else from the D-Bus layer: a malformed reply, a lost connection.
    Bus(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoBus { address, reason } => write!(
                f,
                "cannot connect to the system bus at {address}: {reason} (is dbus running?)"
            ),
            Error::Timeout { what, after } => {
                write!(
                    f,
                    "{what}: no answer from systemd within {} ms",
                    after.as_millis()
                )
            }
            Error::Method { name, message } => write!(f, "systemd refused: {name}: {message}"),
            Error::JobFailed { unit, result } => {
                write!(
                    f,
                    "systemd's job for {unit} ended with result `{result}`, not `done`"
                )
            }
            Error::Bus(e) => write!(f, "D-Bus error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, message, _) => Error::Method {
                name: name.to_string(),
                message: message.unwrap_or_default(),
            },
            zbus::Error::FDO(fdo) => Error::from(*fdo),
            other => Error::Bus(other.to_string()),
        }
    }
}

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Self {
        match e {
            zbus::fdo::Error::ZBus(z) => Error::from(z),
            other => Error::Method {
                name: other.name().to_string(),
                message: other.description().unwrap_or_default().to_string(),
            },
        }
    }
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Only the job signals, only from the manager object of the systemd instance `owner` (its
/// unique bus name).
fn job_removed_rule(owner: &str) -> String {
    format!("type='signal',sender='{owner}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'")
}

/// The bus address to use: `CONTAIN_SYSTEM_BUS_ADDRESS` when set (and not setuid), else the system bus.
pub fn bus_address() -> String {
    secure_env(BUS_ADDRESS_ENV).unwrap_or_else(|| SYSTEM_BUS_ADDRESS.to_string())
}

/// Reads an environment variable, except in a setuid or otherwise secure-mode process (as
/// `secure_getenv` does), where the caller controls the environment.
fn secure_env(name: &str) -> Option<String> {
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return None;
    }
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// Runs `work` on a fresh connection under one deadline.
///
/// Everything zbus builds here lives and dies inside this `block_on`: the connection (its reader
/// task is cancelled when the last handle goes), and no proxy or match-rule stream whose drop
/// would queue a task (a `RemoveMatch`) for a helper thread to run after we return.
fn with_bus<T, F, Fut>(what: &str, timeout: Duration, work: F) -> Result<T, Error>
where
    F: FnOnce(zbus::Connection) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let address = bus_address();
    let started = std::time::Instant::now();
    let stream = connect_socket(&address, timeout)?;
    let remaining = timeout.saturating_sub(started.elapsed());
    zbus::block_on(async {
        let runtime = zruntime::SharedRuntime::current().map_err(|e| Error::Bus(e.to_string()))?;
        let call = async {
            let connection = zbus::connection::Builder::unix_stream(stream)
                .method_timeout(remaining)
                .build()
                .await
                .map_err(|e| Error::NoBus {
                    address: address.clone(),
                    reason: e.to_string(),
                })?;
            work(connection).await
        };
        match runtime.timeout(remaining, call).await {
            Ok(out) => out.map_err(|e| timed_out_io(e, what, timeout)),
            Err(_) => Err(Error::Timeout {
                what: what.to_string(),
                after: timeout,
            }),
        }
    })
}

/// Connects to a `unix:path=` or `unix:abstract=` bus address on this thread, within `timeout`.
///
/// zbus would connect on a pooled helper thread that lingers after the call returns; inside
/// sshd no thread may outlive the PAM call.
fn connect_socket(address: &str, timeout: Duration) -> Result<UnixStream, Error> {
    let no_bus = |reason: String| Error::NoBus {
        address: address.to_string(),
        reason,
    };
    let (path, is_abstract) = parse_unix_address(address)
        .ok_or_else(|| no_bus("only unix:path= and unix:abstract= addresses are supported".into()))?;
    let socket = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| no_bus(std::io::Error::from(e).to_string()))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        // A non-blocking connect on a Unix socket either completes or says EAGAIN (backlog full).
        match connect_unix(&socket, &path, is_abstract) {
            Ok(()) => return Ok(UnixStream::from(socket)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::Timeout {
                    what: format!("connecting to {address}"),
                    after: timeout,
                });
            }
            Err(e) => return Err(no_bus(e.to_string())),
        }
    }
}

fn connect_unix(socket: &OwnedFd, path: &[u8], is_abstract: bool) -> std::io::Result<()> {
    let addr = if is_abstract {
        UnixAddr::new_abstract(path)
    } else if path.contains(&0) {
        Err(Errno::EINVAL)
    } else {
        UnixAddr::new(std::ffi::OsStr::from_bytes(path))
    };
    // A name too long for sun_path is an invalid address, not a missing bus.
    let addr = addr.map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    Ok(connect(socket.as_raw_fd(), &addr)?)
}

/// The socket of the first `unix:` transport in a D-Bus address, unescaped; `true` if abstract.
fn parse_unix_address(address: &str) -> Option<(Vec<u8>, bool)> {
    let transport = address.split(';').next()?;
    let params = transport.strip_prefix("unix:")?;
    for kv in params.split(',') {
        let (key, value) = kv.split_once('=')?;
        let is_abstract = match key {
            "path" => false,
            "abstract" => true,
            _ => continue,
        };
        return Some((unescape_address_value(value)?, is_abstract));
    }
    None
}

fn unescape_address_value(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

async fn call_manager<B>(
    connection: &zbus::Connection,
    method: &str,
    body: &B,
) -> Result<zbus::Message, Error>
where
    B: serde::Serialize + zbus::DynamicType,
{
    Ok(connection
        .call_method(Some(SYSTEMD), MANAGER_PATH, Some(MANAGER), method, body)
        .await?)
}

/// The unique bus name of the systemd instance that owns `org.freedesktop.systemd1` now.
async fn systemd_owner(connection: &zbus::Connection) -> Result<String, Error> {
    let reply = connection
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "GetNameOwner",
            &(SYSTEMD),
        )
        .await?;
    let owner: String = reply.body().deserialize()?;
    Ok(owner)
}

/// Calls a manager method on the instance `owner` itself, so that the answer and the jobs it
/// names are that instance's.
async fn call_owner<B>(
    connection: &zbus::Connection,
    owner: &str,
    method: &str,
    body: &B,
) -> Result<zbus::Message, Error>
where
    B: serde::Serialize + zbus::DynamicType,
{
    let reply = connection
        .call_method(Some(owner), MANAGER_PATH, Some(MANAGER), method, body)
        .await?;
    let from = reply.header().sender().map(|s| s.to_string());
    if from.as_deref() != Some(owner) {
        return Err(Error::Bus(format!(
            "{method}: the answer came from {from:?}, not from systemd ({owner})"
        )));
    }
    Ok(reply)
}

/// zbus's own method timeout surfaces as an I/O error; report it as the timeout it is.
fn timed_out_io(e: Error, what: &str, timeout: Duration) -> Error {
    match &e {
        Error::Bus(text) if text.contains("timed out") => Error::Timeout {
            what: what.to_string(),
            after: timeout,
        },
        _ => e,
    }
}

type VariantProps<'a> = Vec<(&'a str, Variant<'a>)>;

fn to_variants(props: &[Property]) -> VariantProps<'_> {
    props.iter().map(|p| (p.name, p.value.to_variant())).collect()
}

/// Sets properties on a loaded unit (`systemctl set-property [--runtime]`).
pub fn set_unit_properties(
    unit: &str,
    runtime: bool,
    props: &[Property],
    timeout: Duration,
) -> Result<(), Error> {
    let what = format!("SetUnitProperties({unit})");
    with_bus(&what, timeout, |bus| async move {
        call_manager(&bus, "SetUnitProperties", &(unit, runtime, to_variants(props))).await?;
        Ok(())
    })
}

/// Starts a transient scope `name` in `slice` holding `pids`, and waits for its start job to end.
pub fn start_transient_scope(
    name: &str,
    slice: &str,
    pids: &[u32],
    props: &[Property],
    timeout: Duration,
) -> Result<(), Error> {
    let what = format!("StartTransientUnit({name})");
    with_bus(&what, timeout, |bus| async move {
        let mut all = vec![
            Property::new("Slice", Value::Str(slice.to_string())),
            Property::new("PIDs", Value::U32Array(pids.to_vec())),
            Property::new("Description", Value::Str(format!("contain: session in {slice}"))),
            Property::new("CollectMode", Value::Str("inactive-or-failed".into())),
        ];
        all.extend_from_slice(props);
        let owner = systemd_owner(&bus).await?;
        let mut jobs = watch_jobs(&bus, &owner).await?;
        let aux: Vec<(&str, VariantProps<'_>)> = Vec::new();
        // `replace`: a user's slice stops as soon as its last unit ends (StopWhenUnneeded);
        // a login in that moment would be refused in mode `fail` ("transaction is
        // destructive"), `replace` keeps the slice. A shutdown's jobs are irreversible and win.
        let reply = call_owner(
            &bus,
            &owner,
            "StartTransientUnit",
            &(name, "replace", to_variants(&all), aux),
        )
        .await?;
        let job: OwnedObjectPath = reply.body().deserialize()?;
        wait_job(&mut jobs, &owner, &job, name).await
    })
}

/// `systemctl daemon-reload`: systemd answers once the reload is done.
pub fn daemon_reload(timeout: Duration) -> Result<(), Error> {
    with_bus("Reload", timeout, |bus| async move {
        call_manager(&bus, "Reload", &()).await?;
        Ok(())
    })
}

/// `systemctl reload UNIT` (e.g. systemd-oomd.service after its drop-ins changed), waiting for the job.
pub fn reload_unit(name: &str, timeout: Duration) -> Result<(), Error> {
    let what = format!("ReloadUnit({name})");
    with_bus(&what, timeout, |bus| async move {
        let owner = systemd_owner(&bus).await?;
        let mut jobs = watch_jobs(&bus, &owner).await?;
        let reply = call_owner(&bus, &owner, "ReloadUnit", &(name, "replace")).await?;
        let job: OwnedObjectPath = reply.body().deserialize()?;
        wait_job(&mut jobs, &owner, &job, name).await
    })
}

/// Reads a `t` property of a unit, e.g. `("user-1000.slice", "org.freedesktop.systemd1.Slice", "MemoryMax")`.
pub fn unit_property_u64(unit: &str, iface: &str, prop: &str, timeout: Duration) -> Result<u64, Error> {
    let what = format!("Get({unit}, {prop})");
    let path = contain_policy::unit::object_path(unit);
    with_bus(&what, timeout, |bus| async move {
        let reply = bus
            .call_method(
                Some(SYSTEMD),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(iface, prop),
            )
            .await?;
        let value: zbus::OwnedVariant = reply.body().deserialize()?;
        u64::try_from(&*value).map_err(|e| Error::Bus(format!("{prop} of {unit} is not a u64: {e}")))
    })
}

/// Every message the connection receives, with the JobRemoved signals of systemd (`owner`)
/// among them. The stream carries no match rule of its own (dropping one would queue a
/// RemoveMatch task); the rule is added with a plain call and goes away with the connection.
async fn watch_jobs(bus: &zbus::Connection, owner: &str) -> Result<zbus::MessageStream, Error> {
    let stream = zbus::MessageStream::from(bus);
    bus.call_method(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        Some("org.freedesktop.DBus"),
        "AddMatch",
        &(job_removed_rule(owner)),
    )
    .await?;
    Ok(stream)
}

/// Waits for JobRemoved of `job` from `owner`. Any client on the bus may send a signal, and a
/// signal addressed to this connection bypasses match rules: only the sender the bus daemon
/// stamped in the header tells systemd's from a forged one.
async fn wait_job(
    jobs: &mut zbus::MessageStream,
    owner: &str,
    job: &OwnedObjectPath,
    unit: &str,
) -> Result<(), Error> {
    loop {
        let next = poll_fn(|cx| Pin::new(&mut *jobs).poll_next(cx)).await;
        let message = match next {
            Some(m) => m?,
            None => {
                return Err(Error::Bus(format!(
                    "the bus closed before the job for {unit} ended"
                )));
            }
        };
        let header = message.header();
        let is_job_removed = header.message_type() == zbus::message::Type::Signal
            && header.sender().is_some_and(|s| s.as_str() == owner)
            && header.path().is_some_and(|p| p.as_str() == MANAGER_PATH)
            && header.interface().is_some_and(|i| i.as_str() == MANAGER)
            && header.member().is_some_and(|m| m.as_str() == "JobRemoved");
        if !is_job_removed {
            continue;
        }
        let (_id, removed, _unit, result): (u32, OwnedObjectPath, String, String) =
            message.body().deserialize()?;
        if &removed != job {
            continue;
        }
        return match result.as_str() {
            "done" => Ok(()),
            other => Err(Error::JobFailed {
                unit: unit.to_string(),
                result: other.to_string(),
            }),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};

    #[test]
    fn connects_to_path_and_abstract_sockets_and_refuses_bad_names() {
        let dir = std::env::temp_dir().join(format!("contain-bus-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bus");
        let _listener = UnixListener::bind(&path).unwrap();
        let address = format!("unix:path={}", path.display());
        assert!(connect_socket(&address, Duration::from_secs(1)).is_ok());

        let name = format!("contain-bus-test-{}", std::process::id());
        let _abstract =
            UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        assert!(connect_socket(&format!("unix:abstract={name}"), Duration::from_secs(1)).is_ok());

        let gone = format!("unix:path={}", dir.join("gone").display());
        assert!(matches!(
            connect_socket(&gone, Duration::from_secs(1)),
            Err(Error::NoBus { .. })
        ));
        let long = format!("unix:path=/{}", "x".repeat(200));
        let err = connect_socket(&long, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("nvalid"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

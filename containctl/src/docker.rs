//! docker's daemon.json: route containers into docker.slice, keeping every other key.

use crate::host::Host;
use crate::{OK, PROBLEMS};
use serde_json::{Map, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const PARENT_KEY: &str = "cgroup-parent";
pub const PARENT: &str = "docker.slice";

pub fn daemon_json(host: &Host, given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| host.path(DAEMON_JSON), Path::to_path_buf)
}

pub fn docker_installed(host: &Host) -> bool {
    host.find(&["/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd"])
        .is_some()
}

/// What daemon.json says about where containers go.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    Missing,
    Invalid(String),
    /// The value of cgroup-parent, if any.
    Parent(Option<String>),
}

pub fn inspect(path: &Path) -> State {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return State::Missing,
        Err(e) => return State::Invalid(format!("cannot read: {e}")),
    };
    match parse_object(&text) {
        Ok(obj) => State::Parent(obj.get(PARENT_KEY).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        Err(e) => State::Invalid(e),
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    // An empty file is what some installers leave: docker reads it as no settings.
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!(
            "invalid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        )),
    }
}

/// What `docker-setup` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    AlreadySet,
    Created,
    Updated {
        previous: Option<String>,
    },
    /// Another cgroup-parent was there and was asked to be kept.
    KeptOther(String),
    NoDocker,
    LeftInvalid(String),
}

/// Merges `"cgroup-parent": "docker.slice"` into daemon.json. Never rewrites a file that
/// already says so, never touches one it cannot parse; with `keep_other`, never replaces
/// another cgroup-parent (the admin's own).
pub fn setup(host: &Host, path: &Path, keep_other: bool) -> std::io::Result<Outcome> {
    let text = match fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Ok(Outcome::LeftInvalid(format!("cannot read: {e}"))),
    };
    let Some(text) = text else {
        if !docker_installed(host) {
            return Ok(Outcome::NoDocker);
        }
        let mut obj = Map::new();
        obj.insert(PARENT_KEY.into(), Value::String(PARENT.into()));
        write(path, &obj, 0o644)?;
        return Ok(Outcome::Created);
    };
    let mut obj = match parse_object(&text) {
        Ok(o) => o,
        Err(e) => return Ok(Outcome::LeftInvalid(e)),
    };
    let previous = match obj.get(PARENT_KEY) {
        Some(Value::String(s)) if s == PARENT => return Ok(Outcome::AlreadySet),
        Some(v) => Some(v.as_str().map_or_else(|| v.to_string(), str::to_string)),
        None => None,
    };
    if keep_other && let Some(other) = previous {
        return Ok(Outcome::KeptOther(other));
    }
    obj.insert(PARENT_KEY.into(), Value::String(PARENT.into()));
    let mode = fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    write(path, &obj, mode)?;
    Ok(Outcome::Updated { previous })
}

fn write(path: &Path, obj: &Map<String, Value>, mode: u32) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(obj).map_err(std::io::Error::other)? + "\n";
    contain_host::write_atomic(path, text.as_bytes())?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// `containctl docker-setup`.
pub fn command(host: &Host, daemon_json_path: Option<&Path>, keep_other: bool) -> u8 {
    let path = daemon_json(host, daemon_json_path);
    let shown = path.display();
    match setup(host, &path, keep_other) {
        Ok(Outcome::AlreadySet) => {
            println!("{shown} already routes containers into docker.slice");
            OK
        }
        Ok(Outcome::Created) => {
            println!("created {shown}: containers go to docker.slice (restart docker to apply)");
            OK
        }
        Ok(Outcome::Updated { previous }) => {
            match previous {
                Some(p) => println!(
                    "{shown}: cgroup-parent was `{p}`, now docker.slice; other keys kept (restart docker to apply)"
                ),
                None => println!(
                    "{shown}: added cgroup-parent docker.slice; other keys kept (restart docker to apply)"
                ),
            }
            OK
        }
        Ok(Outcome::KeptOther(p)) => {
            println!(
                "{shown}: cgroup-parent is `{p}`, set by the admin: left alone, containers do not go to docker.slice"
            );
            OK
        }
        Ok(Outcome::NoDocker) => {
            println!("docker is not installed and {shown} does not exist: nothing to do");
            OK
        }
        Ok(Outcome::LeftInvalid(e)) => {
            eprintln!(
                "containctl: warning: {shown} left untouched: {e}. Containers keep landing outside docker.slice \
                 until you fix it and run `containctl docker-setup` again."
            );
            PROBLEMS
        }
        Err(e) => {
            eprintln!("containctl: cannot write {shown}: {e}");
            PROBLEMS
        }
    }
}

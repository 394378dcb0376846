//! The generator's last run, `/run/contain/generator.json`: written by the generator and read by
//! containctl and the watchdog through this one struct.

use crate::files::write_atomic;
use crate::policy_files::Outcome;
use crate::root::{Root, paths};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorStatus {
    pub outcome: Outcome,
    pub sources: Vec<String>,
    pub errors: Vec<String>,
    pub units: Vec<String>,
    pub oomd_conf: Option<String>,
    pub oomd_wants: Option<String>,
}

/// Why the status could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum StatusError {
    /// The generator has not run since boot.
    Missing,
    Unreadable(String),
}

impl GeneratorStatus {
    pub fn write(&self, root: &Root) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n";
        write_atomic(&root.path(paths::GENERATOR_STATUS), json.as_bytes())
    }

    pub fn read(root: &Root) -> Result<GeneratorStatus, StatusError> {
        let path = root.path(paths::GENERATOR_STATUS);
        let text = crate::files::read_small(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StatusError::Missing,
            _ => StatusError::Unreadable(e.to_string()),
        })?;
        serde_json::from_str(&text).map_err(|e| StatusError::Unreadable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = Root::new(dir.path());
        assert_eq!(GeneratorStatus::read(&root), Err(StatusError::Missing));
        let status = GeneratorStatus {
            outcome: Outcome::Fallback,
            sources: vec!["(built-in default policy)".into()],
            errors: vec!["/etc/contain/policy.toml:3:1: unknown key".into()],
            units: vec!["user-.slice.d/30-contain.conf".into()],
            oomd_conf: None,
            oomd_wants: None,
        };
        status.write(&root).expect("write");
        assert_eq!(GeneratorStatus::read(&root), Ok(status));
        std::fs::write(root.path(paths::GENERATOR_STATUS), "{").expect("write");
        assert!(matches!(
            GeneratorStatus::read(&root),
            Err(StatusError::Unreadable(_))
        ));
    }
}

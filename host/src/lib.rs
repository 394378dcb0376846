//! contain-host: everything contain reads from or writes to the host, once — the policy files,
//! accounts through NSS, cgroupfs, the generator's status — with every path under one [`Root`],
//! so tests run on fixture trees (`CONTAIN_ROOT=/tmp/fixture`).

pub mod accounts;
pub mod cgroupfs;
pub mod compiled;
pub mod drift;
pub mod files;
pub mod policy_files;
mod root;
pub mod status;

pub use accounts::{Account, LookupError};
pub use cgroupfs::{Cap, Pressure, Stats};
pub use drift::{Machine, Mismatch};
pub use files::write_atomic;
pub use policy_files::{Loaded, MAX_POLICY_BYTES, Outcome, load, load_root_for_units, read_sources};
pub use root::{ROOT_ENV, Root, paths};
pub use status::GeneratorStatus;

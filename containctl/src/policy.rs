//! Which policy containctl looks at, loaded exactly as the generator loads it.

use crate::host::Host;
use contain_host::paths::POLICY as POLICY_PATH;
use contain_host::{Loaded, load};
use contain_policy::Policy;
use std::path::{Path, PathBuf};

/// The policy file: the one given, else /etc/contain/policy.toml under the root.
pub fn path(host: &Host, given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| host.path(POLICY_PATH), Path::to_path_buf)
}

/// The policy the generator would enforce, with file names as the admin knows them.
pub fn effective(host: &Host, given: Option<&Path>) -> Loaded {
    let mut loaded = load(&path(host, given));
    if given.is_none() {
        unroot(host, &mut loaded.policy);
        loaded.errors = loaded.errors.iter().map(|e| host.unroot(e)).collect();
    }
    loaded
}

/// Names the policy's files without the test root, in its sources and its overrides' origins.
pub fn unroot(host: &Host, policy: &mut Policy) {
    for s in policy.sources.iter_mut() {
        *s = host.unroot(s);
    }
    for o in policy.overrides.iter_mut() {
        o.origin.file = host.unroot(&o.origin.file).into();
    }
}

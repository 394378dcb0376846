//! Users and their groups, through the host layer: NSS (bounded in time) on the live box, the
//! root's /etc/passwd and /etc/group on a fixture tree.

use crate::host::Host;
use contain_host::accounts;
pub use contain_policy::Account;
use std::time::Duration;

/// How long containctl waits for the directory (SSSD, LDAP) per lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Looks a user up by login name; the account carries its canonical name.
pub fn by_name(host: &Host, name: &str) -> Option<Account> {
    accounts::by_name(host, name, LOOKUP_TIMEOUT).ok()
}

/// Looks a user up by UID.
pub fn by_uid(host: &Host, uid: u32) -> Option<Account> {
    accounts::by_uid(host, uid, LOOKUP_TIMEOUT).ok()
}

/// The local accounts, as the generator reads them (no NSS).
pub fn files(host: &Host) -> Vec<Account> {
    accounts::files(host)
}

//! Reading Debian's PAM session stacks: is pam_contain there, and after pam_systemd?

/// One `session` line of a PAM stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub control: String,
    /// The module's file name without directory, e.g. `pam_systemd.so`.
    pub module: String,
}

/// The session entries of a pam.d file, in order. Comments, other types and `@include` are skipped.
pub fn session_entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if kind.trim_start_matches('-') != "session" {
            continue;
        }
        let rest = rest.trim_start();
        // The control is a word, or `[ … ]` which may hold spaces.
        let (control, rest) = if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => (&rest[..=end], &rest[end + 1..]),
                None => continue,
            }
        } else {
            rest.split_once(char::is_whitespace).unwrap_or((rest, ""))
        };
        let Some(module) = rest.split_whitespace().next() else {
            continue;
        };
        out.push(Entry {
            control: control.to_string(),
            module: module.rsplit('/').next().unwrap_or(module).to_string(),
        });
    }
    out
}

/// What is wrong with a stack, for `check`.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    Ok,
    Missing,
    BeforeSystemd,
    /// pam_contain is `optional` or skipped: its failure action would not deny.
    NotRequired(String),
}

/// `needs_systemd_first`: common-session, where pam_systemd must have made the session.
pub fn judge(text: &str, needs_systemd_first: bool) -> Finding {
    let entries = session_entries(text);
    let pos = |m: &str| entries.iter().position(|e| e.module == m);
    let Some(contain) = pos("pam_contain.so") else {
        return Finding::Missing;
    };
    if needs_systemd_first && pos("pam_systemd.so").is_some_and(|s| s > contain) {
        return Finding::BeforeSystemd;
    }
    let control = &entries[contain].control;
    if !denies_on_failure(control) {
        return Finding::NotRequired(control.clone());
    }
    Finding::Ok
}

/// Whether a control fails the stack when the module denies (PAM_PERM_DENIED):
/// `required`, `requisite`, or brackets whose action for `perm_denied` (else `default`)
/// is `bad` or `die` — the shipped control is one of those.
fn denies_on_failure(control: &str) -> bool {
    let Some(inner) = control.strip_prefix('[').and_then(|c| c.strip_suffix(']')) else {
        return control == "required" || control == "requisite";
    };
    let action = |code: &str| {
        inner
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .filter(|(key, _)| *key == code)
            .map(|(_, action)| action)
            .next_back()
    };
    matches!(
        action("perm_denied").or_else(|| action("default")),
        Some("bad" | "die")
    )
}

#[cfg(test)]
#[path = "../../tests/support/pam_profile.rs"]
mod pam_profile;

#[cfg(test)]
mod tests {
    use super::pam_profile;
    use super::*;

    /// Debian's common-session with pam_contain added by its profile.
    const DEBIAN: &str = include_str!("../../tests/fixtures/etc/pam.d/common-session");

    #[test]
    fn parses_debian_common_session() {
        let e = session_entries(DEBIAN);
        assert_eq!(e.len(), 7);
        assert_eq!(e[0].control, "[default=1]");
        assert_eq!(e[6].module, "pam_contain.so");
        assert_eq!(judge(DEBIAN, true), Finding::Ok);
    }

    #[test]
    fn finds_missing_misordered_and_optional() {
        let without = DEBIAN.replace("session\trequired\tpam_contain.so\n", "");
        assert_eq!(judge(&without, true), Finding::Missing);
        let commented = DEBIAN.replace(
            "session\trequired\tpam_contain.so",
            "#session required pam_contain.so",
        );
        assert_eq!(judge(&commented, true), Finding::Missing);
        let wrong = "session required pam_contain.so\nsession optional pam_systemd.so\n";
        assert_eq!(judge(wrong, true), Finding::BeforeSystemd);
        // common-session-noninteractive has no pam_systemd; order does not matter there.
        assert_eq!(
            judge(
                "session required /usr/lib/x86_64-linux-gnu/security/pam_contain.so debug\n",
                false
            ),
            Finding::Ok
        );
        assert_eq!(
            judge("session optional pam_contain.so\n", false),
            Finding::NotRequired("optional".into())
        );
        assert_eq!(
            judge("session [success=ok default=ignore] pam_contain.so\n", false),
            Finding::NotRequired("[success=ok default=ignore]".into())
        );
        assert_eq!(
            judge("session [default=bad perm_denied=ignore] pam_contain.so\n", false),
            Finding::NotRequired("[default=bad perm_denied=ignore]".into())
        );
        assert_eq!(
            judge("session [default=ignore perm_denied=die] pam_contain.so\n", false),
            Finding::Ok
        );
    }

    #[test]
    fn the_shipped_profile_passes() {
        let line = pam_profile::shipped_session_line();
        assert_eq!(judge(&format!("session {line}\n"), false), Finding::Ok);
    }
}

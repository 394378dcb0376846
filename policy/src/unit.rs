//! systemd unit names: validation and escaping, as src/basic/unit-name.c does them.

/// The slice holding a user's units. Built from the UID only, never from a name.
pub fn user_slice(uid: u32) -> String {
    format!("user-{uid}.slice")
}

/// Checks a unit name of the given type (`service`, `slice`), e.g. `t3-serve@.service`.
pub fn check_name(name: &str, kind: &str) -> Result<(), String> {
    let suffix = format!(".{kind}");
    let Some(stem) = name.strip_suffix(&suffix) else {
        return Err(format!(
            "`{}` is not a .{kind} unit name; it must end in `.{kind}`",
            name.escape_debug()
        ));
    };
    if name.len() > 255 {
        return Err(format!(
            "unit names are at most 255 characters; this one has {}",
            name.len()
        ));
    }
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":-_.\\".contains(&b))
    };
    let ok = match stem.split_once('@') {
        Some((prefix, instance)) => {
            kind == "service" && valid(prefix) && (instance.is_empty() || valid(instance))
        }
        None => valid(stem),
    };
    if !ok || stem.starts_with('.') {
        return Err(format!(
            "`{}` is not a valid unit name; use letters, digits and `:-_.\\` (escape others with systemd-escape){}",
            name.escape_debug(),
            if kind == "slice" && stem.contains('@') {
                "; slices cannot be templates"
            } else {
                ""
            }
        ));
    }
    if kind == "slice" && stem != "-" && (stem.starts_with('-') || stem.ends_with('-') || stem.contains("--"))
    {
        return Err(format!(
            "`{name}`: a slice name's `-` separates its parents; no empty parts"
        ));
    }
    Ok(())
}

/// Escapes a string as `systemd-escape` does (`-` becomes `\x2d`, `/` becomes `-`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b":_.".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The slice systemd puts instances of a template service in: `t3-serve@.service` → `system-t3\x2dserve.slice`.
pub fn instance_slice(service: &str) -> Option<String> {
    let (prefix, _) = service.strip_suffix(".service")?.split_once('@')?;
    // An already-escaped prefix keeps its escapes, as systemd's default Slice= does.
    let unescaped = unescape(prefix);
    Some(format!("system-{}.slice", escape(&unescaped)))
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(v) = s.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The D-Bus object path of a unit, as systemd escapes it (`user-1000.slice` → `user_2d1000_2eslice`).
pub fn object_path(unit: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_instances_land_in_escaped_slice() {
        assert_eq!(
            instance_slice("t3-serve@.service").as_deref(),
            Some("system-t3\\x2dserve.slice")
        );
        assert_eq!(
            instance_slice("getty@.service").as_deref(),
            Some("system-getty.slice")
        );
        assert_eq!(instance_slice("plain.service"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("t3-serve@.service", "service").is_ok());
        assert!(check_name("system-t3\\x2dserve.slice", "slice").is_ok());
        assert!(check_name("docker.slice", "slice").is_ok());
        assert!(check_name("../etc/passwd.slice", "slice").is_err());
        assert!(check_name("a b.service", "service").is_err());
        assert!(check_name("foo.service", "slice").is_err());
        assert!(check_name("foo@.slice", "slice").is_err());
        assert!(check_name("a--b.slice", "slice").is_err());
    }

    #[test]
    fn escapes_like_systemd() {
        assert_eq!(escape("t3-serve"), "t3\\x2dserve");
        assert_eq!(escape("a/b"), "a-b");
        assert_eq!(
            object_path("user-1000.slice"),
            "/org/freedesktop/systemd1/unit/user_2d1000_2eslice"
        );
    }
}

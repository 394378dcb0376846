//! Reading /etc/passwd and /etc/group text without NSS: the generator runs before any NSS service.

use std::collections::HashMap;

/// A local account and the names of its groups (primary and supplementary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub groups: Vec<String>,
}

/// Parses passwd and group files; malformed lines are skipped, as libc's files backend does.
pub fn parse_accounts(passwd: &str, group: &str) -> Vec<Account> {
    // Indexed by gid and by member: sites with 10,000 users have as many groups.
    let mut by_gid: HashMap<u32, Vec<&str>> = HashMap::new();
    let mut by_member: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in group.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_password), Some(gid), Some(members)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Ok(gid) = gid.parse::<u32>() else { continue };
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        by_gid.entry(gid).or_default().push(name);
        for m in members.split(',').filter(|m| !m.is_empty()) {
            by_member.entry(m).or_default().push(name);
        }
    }
    passwd
        .lines()
        .filter_map(passwd_entry)
        .map(|(name, uid, gid)| {
            let mut groups: Vec<String> = by_gid
                .get(&gid)
                .into_iter()
                .flatten()
                .map(|g| g.to_string())
                .collect();
            for g in by_member.get(name).into_iter().flatten() {
                if !groups.iter().any(|x| x == g) {
                    groups.push(g.to_string());
                }
            }
            Account {
                name: name.to_string(),
                uid,
                groups,
            }
        })
        .collect()
}

/// A local user as the generator sees one: exemptions go by UID and name, never by group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalUser<'a> {
    pub uid: u32,
    pub name: &'a str,
}

impl Account {
    pub fn local(&self) -> LocalUser<'_> {
        LocalUser {
            uid: self.uid,
            name: &self.name,
        }
    }
}

/// The users in passwd text, borrowed from it: a site's 10,000 lines are read at every boot.
pub fn local_users(passwd: &str) -> Vec<LocalUser<'_>> {
    local_users_where(passwd, |_, _| true)
}

/// The users in passwd text for which `keep(uid, name)` holds: a line is read past its UID
/// only when kept. The generator keeps the
/// exempt few of a site's 10,000 accounts.
pub fn local_users_where(passwd: &str, keep: impl Fn(u32, &str) -> bool) -> Vec<LocalUser<'_>> {
    // Split with memchr, not `lines()`: a `\r` left before the `\n` is in the last field, unread.
    let mut start = 0;
    let lines = memchr::memchr_iter(b'\n', passwd.as_bytes())
        .chain([passwd.len()])
        .map(|end| &passwd[std::mem::replace(&mut start, end + 1)..end]);
    lines
        .filter(|line| name_and_uid(line).is_some_and(|(name, uid)| keep(uid, name)))
        .filter_map(passwd_entry)
        .map(|(name, uid, _)| LocalUser { uid, name })
        .collect()
}

/// The name and UID fields of a passwd line, which [`passwd_entry`] also gives if it is well-formed.
fn name_and_uid(line: &str) -> Option<(&str, u32)> {
    let mut colons = (line.bytes().enumerate()).filter_map(|(i, b)| (b == b':').then_some(i));
    let (name_end, password_end, uid_end) = (colons.next()?, colons.next()?, colons.next()?);
    Some((&line[..name_end], line[password_end + 1..uid_end].parse().ok()?))
}

/// Name, UID and GID of a well-formed passwd line (exactly seven fields); others are skipped,
/// as libc's files backend does. One pass over the bytes: this runs for every line at boot.
fn passwd_entry(line: &str) -> Option<(&str, u32, u32)> {
    let mut colons = [0usize; 6];
    let mut n = 0;
    for (i, &b) in line.as_bytes().iter().enumerate() {
        if b == b':' {
            *colons.get_mut(n)? = i;
            n += 1;
        }
    }
    if n != 6 {
        return None;
    }
    let name = &line[..colons[0]];
    if name.is_empty() || name.starts_with(['#', '+', '-']) {
        return None;
    }
    let uid = line[colons[1] + 1..colons[2]].parse().ok()?;
    let gid = line[colons[2] + 1..colons[3]].parse().ok()?;
    Some((name, uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_primary_and_supplementary_groups() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n+nis\nbroken\n";
        let group = "root:x:0:\nalice:x:1001:\nhpc:x:2000:bob,alice\n";
        let a = parse_accounts(passwd, group);
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].name, "alice");
        assert_eq!(a[1].uid, 1001);
        assert_eq!(a[1].groups, vec!["alice".to_string(), "hpc".to_string()]);
        let users = local_users(passwd);
        assert_eq!(users, [a[0].local(), a[1].local()]);
        assert!(local_users("a:x:1:1:g:/h\nb:x:2:2:g:/h:/s:extra\n").is_empty());
        let odd = "a:x:1:1::/:/s\nb:x:2\nc:x:3:3::/:/s:x\n#d:x:4:4::/:/s\ne:x:5:5::/:/s\r\nf:x:6:6::/:/s";
        let all = local_users(odd);
        assert_eq!(all.iter().map(|u| u.uid).collect::<Vec<_>>(), [1, 5, 6]);
        assert_eq!(local_users_where(odd, |_, _| true), all);
        assert_eq!(
            local_users_where(odd, |uid, name| uid == 5 || name == "f"),
            all[1..]
        );
    }
}

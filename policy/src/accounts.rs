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
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 7 || f[0].is_empty() || f[0].starts_with(['#', '+', '-']) {
                return None;
            }
            let uid: u32 = f[2].parse().ok()?;
            let gid: u32 = f[3].parse().ok()?;
            let name = f[0];
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
            Some(Account {
                name: name.to_string(),
                uid,
                groups,
            })
        })
        .collect()
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
    }
}

//! Reading /etc/passwd and /etc/group text without NSS: the generator runs before any NSS service.

/// A local account and the names of its groups (primary and supplementary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub groups: Vec<String>,
}

/// Parses passwd and group files; malformed lines are skipped, as libc's files backend does.
pub fn parse_accounts(passwd: &str, group: &str) -> Vec<Account> {
    let groups: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            let _password = f.next()?;
            let gid = f.next()?.parse().ok()?;
            let members = f.next()?.split(',').filter(|m| !m.is_empty()).collect();
            (!name.is_empty() && !name.starts_with('#')).then_some((name, gid, members))
        })
        .collect();
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
            let names = groups
                .iter()
                .filter(|(_, g, members)| *g == gid || members.contains(&name))
                .map(|(n, _, _)| n.to_string())
                .collect();
            Some(Account {
                name: name.to_string(),
                uid,
                groups: names,
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

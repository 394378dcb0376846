//! The block devices behind the policy's IO paths, and what each can enforce: io.weight needs
//! BFQ or io.cost; io.latency and io.max (bandwidth caps) work on any scheduler.

use crate::host::Host;
use std::fs;

/// One whole disk backing some of the paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// `vda`, `nvme0n1`.
    pub name: String,
    /// The disk's `MAJ:MIN`, as io.cost.qos and io.max key it.
    pub dev: String,
    /// The active scheduler (`none`, `mq-deadline`, `bfq`), when known.
    pub scheduler: Option<String>,
    /// Its `queue/scheduler` in sysfs, read for `scheduler` and written to change it.
    pub scheduler_file: std::path::PathBuf,
    /// io.cost is enabled on it (`enable=1` in /sys/fs/cgroup/io.cost.qos).
    pub iocost: bool,
    pub paths: Vec<String>,
}

impl Disk {
    /// io.weight (`IOWeight=`) has an effect here.
    pub fn honours_weight(&self) -> bool {
        self.iocost || self.scheduler.as_deref() == Some("bfq")
    }
}

/// The `MAJ:MIN` of the filesystem holding `path`: the longest mount point above it in
/// /proc/self/mountinfo.
fn mount_dev(mountinfo: &str, path: &str) -> Option<String> {
    let under =
        |mnt: &str| mnt == "/" || path == mnt || path.strip_prefix(mnt).is_some_and(|r| r.starts_with('/'));
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.get(4)?, *f.get(2)?))
        })
        .filter(|(mnt, _)| under(mnt))
        // The last of the longest: a later mount over the same point hides earlier ones.
        .fold(None, |best: Option<(&str, &str)>, (mnt, dev)| match best {
            Some((b, _)) if b.len() > mnt.len() => best,
            _ => Some((mnt, dev)),
        })
        .map(|(_, dev)| dev.to_string())
}

/// The whole disk of a block device: itself, or the parent of a partition.
fn disk_of(host: &Host, dev: &str) -> Option<(String, std::path::PathBuf)> {
    let dir = fs::canonicalize(host.path(format!("/sys/dev/block/{dev}"))).ok()?;
    let disk = if dir.join("partition").exists() {
        dir.parent()?.to_path_buf()
    } else {
        dir
    };
    let name = disk.file_name()?.to_str()?.to_string();
    Some((name, disk))
}

/// The active scheduler in a queue/scheduler text (`mq-deadline kyber [bfq] none`).
pub fn active(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_string)
}

/// The disks behind `paths`, each once, with the paths it holds. Paths on no block device
/// (tmpfs, a missing mount table) are left out.
pub fn disks(host: &Host, paths: &[String]) -> Vec<Disk> {
    let mountinfo = host.read("/proc/self/mountinfo").unwrap_or_default();
    let qos = host.read("/sys/fs/cgroup/io.cost.qos").unwrap_or_default();
    let mut out: Vec<Disk> = Vec::new();
    for path in paths {
        let Some(dev) = mount_dev(&mountinfo, path) else {
            continue;
        };
        let Some((name, dir)) = disk_of(host, &dev) else {
            continue;
        };
        if let Some(d) = out.iter_mut().find(|d| d.name == name) {
            if !d.paths.contains(path) {
                d.paths.push(path.clone());
            }
            continue;
        }
        let disk_dev = fs::read_to_string(dir.join("dev"))
            .map(|t| t.trim().to_string())
            .unwrap_or(dev);
        let iocost = qos.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some(disk_dev.as_str()) && w.any(|kv| kv == "enable=1")
        });
        let scheduler_file = dir.join("queue/scheduler");
        out.push(Disk {
            scheduler: fs::read_to_string(&scheduler_file).ok().and_then(|t| active(&t)),
            scheduler_file,
            name,
            dev: disk_dev,
            iocost,
            paths: vec![path.clone()],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_mount_wins() {
        let mi = "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n\
                  30 22 254:17 / /home rw - ext4 /dev/vdb1 rw\n\
                  31 22 0:30 / /tmp rw - tmpfs tmpfs rw\n";
        assert_eq!(mount_dev(mi, "/").as_deref(), Some("254:1"));
        assert_eq!(mount_dev(mi, "/home").as_deref(), Some("254:17"));
        assert_eq!(mount_dev(mi, "/home/x").as_deref(), Some("254:17"));
        assert_eq!(mount_dev(mi, "/homer").as_deref(), Some("254:1"));
        assert_eq!(mount_dev(mi, "/tmp").as_deref(), Some("0:30"));
        assert_eq!(active("mq-deadline kyber [bfq] none\n").as_deref(), Some("bfq"));
        assert_eq!(active("none\n"), None);
    }
}

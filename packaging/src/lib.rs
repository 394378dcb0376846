//! Carries the Debian package metadata for contain (see `Cargo.toml`); ships no code.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    const PAM_MODULE: &str = "target/release/libpam_contain.so";

    /// (source, dest) of every `["source", "dest", "mode"]` asset line of the table `header`.
    fn assets(manifest: &str, header: &str) -> Vec<(String, String)> {
        let mut lines = manifest.lines().skip_while(|l| l.trim() != header);
        assert!(lines.next().is_some(), "no {header} in Cargo.toml");
        lines
            .take_while(|l| !l.starts_with('['))
            .filter_map(|l| l.trim().strip_prefix("[\""))
            .map(|l| {
                let parts: Vec<&str> = l.split('"').collect();
                (parts[0].to_string(), parts[2].to_string())
            })
            .collect()
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().expect("runs (dpkg-dev: scripts/deps.sh)");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
    }

    /// For a Rust target, the package's variant (its Debian architecture) puts the PAM module in
    /// that architecture's multiarch directory, where libpam looks, and ships everything else as
    /// amd64 does.
    #[test]
    fn the_pam_module_goes_to_the_multiarch_directory_of_the_target() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let default = assets(&manifest, "[package.metadata.deb]");
        assert!(default.len() > 5, "{default:?}");
        for (target, arch, multiarch) in [
            ("x86_64-unknown-linux-gnu", "amd64", "x86_64-linux-gnu"),
            ("aarch64-unknown-linux-gnu", "arm64", "aarch64-linux-gnu"),
            ("armv7-unknown-linux-gnueabihf", "armhf", "arm-linux-gnueabihf"),
        ] {
            assert_eq!(
                run(Command::new(dir.join("deb-arch.sh")).arg(target)),
                arch,
                "{target}"
            );
            let dpkg = run(Command::new("dpkg-architecture").args(["-a", arch, "-qDEB_HOST_MULTIARCH"]));
            assert_eq!(dpkg, multiarch, "{arch}");
            // amd64 is the default table; the others are variants named by architecture.
            let list = if arch == "amd64" {
                default.clone()
            } else {
                let header = format!("[package.metadata.deb.variants.{arch}]");
                let section: String = manifest
                    .lines()
                    .skip_while(|l| l.trim() != header)
                    .take_while(|l| !l.starts_with("assets"))
                    .collect();
                assert!(
                    section.contains("name = \"contain\""),
                    "{arch}: the package keeps its name"
                );
                assets(&manifest, &header)
            };
            let pam: Vec<&String> = list
                .iter()
                .filter(|(s, _)| s == PAM_MODULE)
                .map(|(_, d)| d)
                .collect();
            assert_eq!(
                pam,
                [&format!("usr/lib/{multiarch}/security/pam_contain.so")],
                "{target}"
            );
            let others = |l: &[(String, String)]| -> Vec<(String, String)> {
                l.iter().filter(|(s, _)| s != PAM_MODULE).cloned().collect()
            };
            assert_eq!(
                others(&list),
                others(&default),
                "{arch}: the same files otherwise"
            );
        }
    }
}

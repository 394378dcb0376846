//! What a bounded NSS lookup costs: `accounts::by_name` (a child process per lookup) against the
//! same lookup made in this process, each timed over CALLS calls, medians and p99s printed.
//!
//! Usage: cargo run --release -p contain-host --example lookup_bench [USER] [CALLS]

use contain_host::{Root, accounts};
use std::time::{Duration, Instant};

fn figures(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{name:<34} n={}  median {:8.1} µs   p99 {:8.1} µs",
        times.len(),
        at(0.5),
        at(0.99)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "nobody".into());
    let calls: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
    let root = Root::default();
    let timed = |f: &dyn Fn()| -> Vec<Duration> {
        (0..calls)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect()
    };
    figures(
        "bounded (child process)",
        timed(&|| {
            accounts::by_name(&root, &user, Duration::from_secs(2)).expect("user exists");
        }),
    );
    figures(
        "in this process (unbounded)",
        timed(&|| {
            let u = nix::unistd::User::from_name(&user)
                .expect("nss")
                .expect("user exists");
            let name = std::ffi::CString::new(u.name.as_str()).expect("name");
            for g in nix::unistd::getgrouplist(&name, u.gid).expect("groups") {
                let _ = nix::unistd::Group::from_gid(g);
            }
        }),
    );
}

//! Test helper, not installed: a memory balloon for the watchdog's integration tests.
//! `contain-test-balloon STEP_MB EVERY_MS LIMIT_MB [UID]` allocates and touches STEP_MB every
//! EVERY_MS until LIMIT_MB (0 = without end), then sleeps; with UID it first becomes that user
//! (it joined its cgroup as root, before exec), as a user's runaway is.

use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
use std::time::Duration;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("usage: contain-test-balloon STEP_MB EVERY_MS LIMIT_MB [UID]")
        })
        .collect();
    let [step, every, limit, rest @ ..] = args.as_slice() else {
        panic!("usage: contain-test-balloon STEP_MB EVERY_MS LIMIT_MB [UID]");
    };
    if let Some(&uid) = rest.first() {
        let uid = u32::try_from(uid).expect("uid");
        setgroups(&[])
            .and_then(|_| setgid(Gid::from_raw(uid)))
            .and_then(|_| setuid(Uid::from_raw(uid)))
            .unwrap_or_else(|e| panic!("cannot become uid {uid}: {e}"));
    }
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        if *limit == 0 || (held.len() as u64) * step < *limit {
            // vec![1; n] writes every byte: the pages are really touched and charged.
            held.push(vec![1u8; (step << 20) as usize]);
        }
        std::thread::sleep(Duration::from_millis(*every));
        std::hint::black_box(&held);
    }
}

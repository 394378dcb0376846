//! Arbitrary bytes as a policy (and its drop-in): parse, validate, resolve, render, add up.
//! Nothing may panic or hang, whatever the input, and reading a file in chunks must give what
//! reading it whole gives.
#![no_main]

use contain_policy::{LocalUser, Source, aggregate, chunked_reading_agrees, parse, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Split once so the merge of policy.d drop-ins is fuzzed too.
    let (main, dropin) = text.split_once("\n%%\n").unwrap_or((text, ""));
    assert!(chunked_reading_agrees(main), "reading in chunks and whole disagree");
    let sources = [Source { path: "policy.toml", text: main }, Source { path: "policy.d/10.toml", text: dropin }];
    match parse(&sources) {
        Ok(policy) => {
            let users = [LocalUser { uid: 1001, name: "alice" }, LocalUser { uid: 0, name: "root" }];
            let _ = render(&policy, &users);
            let _ = policy.resolve(1001, "alice", &["hpc"]);
            let _ = aggregate(&policy, 4 << 30).to_string();
            let _ = aggregate(&policy, u64::MAX).to_string();
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in diags {
                let _ = d.to_string();
            }
        }
    }
});

//! Time of parse + validate + render alone (no file writes), as the generator does them: `cargo
//! run --release -p contain-policy --example render_bench -- POLICY PASSWD [RUNS]`.

use contain_policy::{Source, local_users, parse, render};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, policy, passwd, rest @ ..] = args.as_slice() else {
        eprintln!("usage: render_bench POLICY PASSWD [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(50);
    let read = |p: &String| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let (policy_text, passwd) = (read(policy), read(passwd));
    let mut times = Vec::with_capacity(runs);
    let mut phases = [std::time::Duration::ZERO; 3];
    let mut files = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let parsed = parse(&[Source {
            path: policy,
            text: &policy_text,
        }])
        .expect("valid policy");
        let parsed_at = Instant::now();
        let users = local_users(&passwd);
        let accounts_at = Instant::now();
        files = render(&parsed, &users).units.len();
        let done = Instant::now();
        phases[0] += parsed_at - start;
        phases[1] += accounts_at - parsed_at;
        phases[2] += done - accounts_at;
        times.push(done - start);
    }
    let per_run = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / runs as f64;
    eprintln!(
        "phases (mean): parse {:.2} ms, accounts {:.2} ms, render {:.2} ms",
        per_run(phases[0]),
        per_run(phases[1]),
        per_run(phases[2])
    );
    times.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "parse+render (no writes): median {:.2} ms, p99 {:.2} ms over {runs} runs, {files} units",
        ms(times[runs / 2]),
        ms(times[(runs * 99 / 100).min(runs - 1)])
    );
}

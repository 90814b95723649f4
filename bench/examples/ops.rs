//! A fixed, repeatable run of engine operations for instruction counts
//! (`valgrind --tool=callgrind`), which repeat exactly however busy the
//! machine is: `ops issue N` issues N step-up codes, `ops verify N` issues
//! and verifies N, on a store of 1,000 accounts. Run two counts and divide
//! the difference in instructions by the difference in N: setup cancels out.
//!
//! `cargo build --release -p otp-bench --example ops`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bench::{engine_config, open_with, populate};
use engine::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let populated = populate(1_000, false).unwrap();
    // The production default page cache (the tests' is 16 MiB).
    let mut config = engine_config(&populated.path());
    config.store.cache_bytes = 64 << 20;
    let (engine, _clock) = open_with(config).unwrap();
    let accounts = &populated.accounts;
    for i in 0..n {
        let account = accounts[i % accounts.len()];
        let issued = engine
            .issue_step_up(account, Some(Channel::Sms), None, None)
            .unwrap();
        // Every 100th operation waits to be durable, and so does the last.
        let wait = i % 100 == 99 || i + 1 == n;
        if mode == "verify" {
            let (id, code) = {
                let issued = issued.peek();
                (issued.challenge_id, issued.code.clone())
            };
            let verified = engine.verify(id, Purpose::StepUp, &code).unwrap();
            assert!(matches!(verified.peek(), Verification::Approved(_)));
            if wait {
                verified.wait().unwrap();
            }
        } else if wait {
            issued.wait().unwrap();
        }
        if wait {
            drain(&engine);
        }
    }
    println!("{mode} {n}");
}

fn drain(engine: &Engine) {
    for message in engine.outbox_due(1_000) {
        let _ = engine.outbox_report(message.id, SendResult::Sent);
    }
}

//! Backups: consistent while writes go on, checked whole, restored byte for byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::*;

use crate::helpers::*;

fn phone(n: u64) -> String {
    format!("+3519{n:08}")
}

/// Opens an engine on a restored store, with the test engines' code key and clock.
fn open_restored(path: std::path::PathBuf) -> Engine {
    let mut config = EngineConfig::for_tests();
    config.store.path = Some(path);
    Engine::open(
        config,
        CodeKey::new([42; 32]),
        Arc::new(ManualClock::new(START)),
        seeded_rng([9; 32]),
    )
    .expect("the restored store opens")
}

#[test]
fn a_backup_taken_during_writes_restores_everything_acknowledged_before_it() {
    let t = TestEngine::new();
    let locked = t.register(&phone(1));
    t.engine.lock(locked, "fraud").unwrap().wait().unwrap();
    let holder = t.register(&phone(2));
    let issued = t.login_code(&phone(2));

    let started = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (engine, started) = (Arc::clone(&t.engine), Arc::clone(&started));
            std::thread::spawn(move || {
                let mut before = Vec::new();
                for n in 0..150 {
                    let number = 1_000 + w * 1_000 + n;
                    let account = NewAccount {
                        identity: identity_for(&phone(number)),
                        phone: Some(Phone::parse(&phone(number)).unwrap()),
                        email: None,
                        pin: Pin::new(PIN),
                        birth_date: None,
                        postal_address: None,
                        dm: None,
                        locale: None,
                    };
                    let id = engine.register(account).unwrap().wait().unwrap().id;
                    if !started.load(Ordering::SeqCst) {
                        before.push(id);
                    }
                }
                before
            })
        })
        .collect();
    // Let some registrations land first, then copy while the rest go on.
    while t.engine.stats().accounts < 100 {
        std::thread::yield_now();
    }
    started.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let summary = t.engine.backup_to(&dir.path().join("b")).unwrap();
    let acknowledged: Vec<AccountId> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(!acknowledged.is_empty());
    assert!(summary.records > 100 && summary.bytes > 0);
    assert_eq!(verify_backup(&dir.path().join("b")).unwrap(), summary);

    let restored_at = dir.path().join("restored");
    let restored = restore_backup(&dir.path().join("b"), &restored_at).unwrap();
    assert_eq!(restored, summary);
    let engine = open_restored(restored_at);
    for id in acknowledged.iter().chain([&locked, &holder]) {
        assert!(
            engine.account(*id).is_ok(),
            "acknowledged account {id} missing"
        );
    }
    assert!(matches!(
        engine.account(locked).unwrap().state,
        AccountState::Locked(_)
    ));
    // The live code was copied with its keyed hash: it still verifies, once.
    assert!(matches!(
        engine
            .verify(
                issued.challenge_id,
                Purpose::Login,
                &Code::new(issued.code.expose())
            )
            .and_then(Durable::wait)
            .unwrap(),
        Verification::Approved(_)
    ));
}

#[test]
fn a_damaged_or_misplaced_backup_is_refused_with_the_reason() {
    let t = TestEngine::new();
    for n in 0..20 {
        t.register(&phone(n));
    }
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    let summary = t.engine.backup_to(&backup).unwrap();
    let again = t.engine.backup_to(&backup).unwrap_err().to_string();
    assert!(again.contains("already exists"), "{again}");

    let existing = dir.path().join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    let refused = restore_backup(&backup, &existing).unwrap_err().to_string();
    assert!(refused.contains("already exists"), "{refused}");

    let original = std::fs::read(&summary.file).unwrap();
    let damage = |bytes: Vec<u8>| -> String {
        std::fs::write(&summary.file, bytes).unwrap();
        let why = verify_backup(&backup).unwrap_err().to_string();
        let restore = restore_backup(&backup, &dir.path().join("never")).unwrap_err();
        assert!(!dir.path().join("never").exists());
        assert!(!dir.path().join("never.restoring").exists());
        assert_eq!(restore.to_string(), why);
        why
    };
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x40;
    assert!(damage(flipped).contains("fails its checksum"));
    let half = original[..original.len() / 2].to_vec();
    assert!(damage(half).contains("fails its checksum"));
    assert!(damage(Vec::new()).contains("too short"));
    std::fs::write(&summary.file, &original).unwrap();
    assert_eq!(verify_backup(&backup).unwrap(), summary);
}

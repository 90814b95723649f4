//! The sled store's unit tests: the group commit's grouping, ordering,
//! bounded rounds and shutdown, and the guards.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use super::commit::MAX_ROUND;
use super::*;
use crate::store::Durable;

/// Raw keys under `prefix`, counted.
fn count(store: &SledStore, prefix: u8) -> usize {
    let mut n = 0;
    store
        .scan(prefix, &mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
    n
}

#[test]
fn concurrent_writers_share_flushes_and_all_become_durable() {
    let store = Arc::new(SledStore::open(&StoreConfig::temporary()).unwrap());
    let commit = Store::commit(&*store);
    let threads: Vec<_> = (0..16u8)
        .map(|t| {
            let (store, commit) = (Arc::clone(&store), Arc::clone(&commit));
            std::thread::spawn(move || {
                for i in 0..50u8 {
                    let mut writes = Writes::default();
                    writes.insert(&[b'x', t, i], vec![i]);
                    let ticket = store.write_raw(writes).unwrap();
                    Durable::new((), Some(ticket), Arc::clone(&commit))
                        .wait()
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.writes, 800);
    // 16 writers waiting at once: a flusher per write would mean no grouping.
    assert!(stats.flushes < stats.writes, "{stats:?}");
    assert_eq!(count(&store, b'x'), 800);
}

#[test]
fn queued_writes_apply_in_order_and_flush_waits_for_them() {
    let store = SledStore::open(&StoreConfig::temporary()).unwrap();
    for i in 0..100u8 {
        let mut writes = Writes::default();
        writes.insert(b"x-same", vec![i]);
        writes.insert(&[b'x', i], vec![i]);
        if i % 2 == 1 {
            writes.remove(&[b'x', i - 1]);
        }
        // Nobody waits: `flush` must still apply and persist them all.
        store.write_raw(writes).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.db.get(b"x-same").unwrap().unwrap().as_ref(), [99]);
    // 100 keys x0..x99 written, the 50 even ones removed by the next write.
    assert_eq!(count(&store, b'x'), 1 + 50);
}

#[test]
fn a_long_queue_is_applied_in_bounded_rounds() {
    let store = SledStore::open(&StoreConfig::temporary()).unwrap();
    let n = 3 * MAX_ROUND;
    {
        // Queue everything while the writer cannot look, as behind a slow disk.
        let mut state = store.commit.lock();
        for i in 0..n as u32 {
            let mut writes = Writes::default();
            writes.insert(&i.to_be_bytes(), vec![1]);
            state.queued.push(writes);
        }
        state.requested += n as u64;
    }
    store.commit.work.notify_one();
    store.flush().unwrap();
    let stats = store.stats();
    assert_eq!(stats.writes, n as u64);
    assert_eq!(stats.flushes, 3, "rounds of MAX_ROUND: {stats:?}");
    assert_eq!(count(&store, 0), n);
}

#[test]
fn a_closing_store_refuses_new_writes() {
    let store = SledStore::open(&StoreConfig::temporary()).unwrap();
    store.commit.lock().shutdown = true;
    let err = store.write_raw(Writes::default()).unwrap_err();
    assert!(err.to_string().contains("closing"), "{err}");
}

#[test]
fn async_waiters_are_woken_by_the_flusher() {
    let store = SledStore::open(&StoreConfig::temporary()).unwrap();
    let mut writes = Writes::default();
    writes.insert(b"x1", b"1".to_vec());
    let ticket = store.write_raw(writes).unwrap();
    let wait = Durable::new(7, Some(ticket), Store::commit(&store)).wait_async();
    assert_eq!(block_on(wait).unwrap(), 7);
    let ready = Durable::new(8, None, Store::commit(&store)).wait_async();
    assert_eq!(block_on(ready).unwrap(), 8);
}

/// A minimal executor: parks the thread until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Opening a directory whose raw sled database `prepare` left behind is
/// refused as corrupt.
fn refused_after(prepare: impl FnOnce(&::sled::Db)) {
    let dir = tempdir();
    {
        let db = ::sled::open(&dir).unwrap();
        prepare(&db);
        db.flush().unwrap();
    }
    let config = StoreConfig {
        path: Some(dir.clone()),
        cache_bytes: 1 << 20,
        min_free_bytes: 0,
        cluster: None,
    };
    assert!(matches!(
        SledStore::open(&config),
        Err(EngineError::Corrupt(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_store_with_a_foreign_format_marker_refuses_to_open() {
    refused_after(|db| {
        db.insert(FORMAT_KEY, &b"something-else"[..]).unwrap();
    });
}

#[test]
fn a_store_with_records_but_no_marker_refuses_to_open() {
    refused_after(|db| {
        db.insert(b"a-record", &b"x"[..]).unwrap();
    });
}

#[test]
fn a_directory_held_by_a_live_store_is_reported_as_in_use() {
    let dir = tempdir();
    let config = StoreConfig {
        path: Some(dir.clone()),
        cache_bytes: 1 << 20,
        min_free_bytes: 0,
        cluster: None,
    };
    let _held = SledStore::open(&config).unwrap();
    match SledStore::open(&config) {
        Err(EngineError::StoreInUse(why)) => assert!(why.contains("in use"), "{why}"),
        other => panic!("{other:?}"),
    }
    drop(_held);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_store_reopens_at_once_after_being_dropped() {
    let dir = tempdir();
    let config = StoreConfig {
        path: Some(dir.clone()),
        cache_bytes: 1 << 20,
        min_free_bytes: 0,
        cluster: None,
    };
    for _ in 0..5 {
        drop(SledStore::open(&config).unwrap());
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> std::path::PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    std::env::temp_dir().join(format!("otpd-store-test-{}", u64::from_le_bytes(bytes)))
}

//! A full disk, on a small tmpfs the test mounts itself (skipped, with the
//! reason printed, where the machine does not allow mounting).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use hyper::StatusCode;

use crate::helpers::*;

/// A tmpfs mounted for one test and unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: dir.path().to_owned(),
            _dir: dir,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the file system of `dir` until a write fails, then gives back
/// `leave` bytes. Returns the filler file.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = file.sync_all();
    file.set_len(written.saturating_sub(leave)).unwrap();
    path
}

fn assert_unavailable(r: &Response) {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
}

fn phone(n: u64) -> String {
    format!("+3519{n:08}")
}

fn civil_id(n: u64) -> String {
    format!("{n:08}")
}

/// A server whose data directory is on a fresh 64 MiB tmpfs, keeping
/// `min_free_mb` free; `None` (with the reason printed) where mounting is not allowed.
async fn on_small_disk(min_free_mb: u64) -> Option<(Tmpfs, TestApp)> {
    let tmpfs = match Tmpfs::mount(64) {
        Ok(t) => t,
        Err(why) => {
            println!("skipped: cannot mount a tmpfs to fill ({why})");
            return None;
        }
    };
    let data_dir = tmpfs.path.join("data");
    let app = spawn_app_with(move |c| {
        c.data_dir = data_dir;
        c.store.cache_mb = 4;
        c.store.min_free_mb = min_free_mb;
    })
    .await;
    Some((tmpfs, app))
}

#[tokio::test]
async fn a_full_disk_fails_writes_closed_and_service_resumes_when_space_returns() {
    let Some((tmpfs, app)) = on_small_disk(16).await else {
        return;
    };
    let mut accounts = Vec::new();
    for n in 0..5 {
        accounts.push(app.registered(&phone(n), &civil_id(n)).await);
    }
    let (pending, code) = app.login_code(&phone(0)).await;

    // Below the reserve: every write is refused before it changes anything.
    let filler = fill(&tmpfs.path, 8 << 20);
    let ready = app.readyz().await;
    assert_unavailable(&ready);
    assert!(ready.text.contains("disk full"), "{}", ready.text);
    let live = app.livez().await;
    assert_eq!(live.status, StatusCode::OK);

    let refused = app.register(&phone(100), &civil_id(100)).await;
    assert_unavailable(&refused);
    assert_eq!(refused.error_code(), "storage_unavailable");
    assert!(refused.text.contains("disk is full"), "{}", refused.text);
    assert!(refused.headers.contains_key("retry-after"));
    let refused = app.verify(&pending, &code).await;
    assert_unavailable(&refused);
    let refused = app.login(&phone(1), PIN).await;
    assert_unavailable(&refused);
    // A backup beside the store would eat what is left: refused, with why.
    let backup = app.backup().await;
    assert_eq!(backup.error_code(), "backup_failed", "{}", backup.text);
    assert!(backup.text.contains("disk full"), "{}", backup.text);
    // Reads answer from memory.
    for id in &accounts {
        assert_eq!(app.account(id).await.status, StatusCode::OK);
    }

    // Space returns: service resumes, and the refused changes never happened.
    std::fs::remove_file(&filler).unwrap();
    let ready = app.readyz().await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let approved = app.verify(&pending, &code).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(approved.body["result"], "approved", "{}", approved.text);
    accounts.push(app.registered(&phone(100), &civil_id(100)).await);

    let app = app.restart().await;
    for id in &accounts {
        assert_eq!(app.account(id).await.status, StatusCode::OK);
    }
    let again = app.verify(&pending, &code).await;
    assert_eq!(again.error_code(), "already_used", "{}", again.text);
}

/// With no reserve the disk fills under sled itself: the write fails, is
/// not acknowledged, and writes stay stopped until a restart reloads the
/// store; everything acknowledged before is still there after it.
#[tokio::test]
async fn a_disk_full_under_the_store_stops_writes_until_a_restart() {
    let Some((tmpfs, app)) = on_small_disk(0).await else {
        return;
    };
    let mut accounts = Vec::new();
    for n in 0..5 {
        accounts.push(app.registered(&phone(n), &civil_id(n)).await);
    }
    let filler = fill(&tmpfs.path, 0);
    let mut refused = 0;
    for n in 100..300 {
        let r = app.register(&phone(n), &civil_id(n)).await;
        match r.status {
            StatusCode::CREATED => accounts.push(r.body["account_id"].as_str().unwrap().to_owned()),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.error_code(), "storage_unavailable", "{}", r.text);
                refused += 1;
            }
            other => panic!("{other}: {}", r.text),
        }
    }
    println!("{} acknowledged, {refused} refused", accounts.len());
    assert!(refused > 0, "a full disk refused nothing");
    let ready = app.readyz().await;
    assert_unavailable(&ready);
    println!("{}", ready.text);
    let live = app.livez().await;
    assert_eq!(live.status, StatusCode::OK);

    std::fs::remove_file(&filler).unwrap();
    // Writes stay stopped, but what is on disk can still be backed up.
    let refused = app.register(&phone(400), &civil_id(400)).await;
    assert_unavailable(&refused);
    let backup = app.backup().await;
    assert_eq!(backup.status, StatusCode::OK, "{}", backup.text);
    let app = app.restart_expecting(Err("No space left")).await;
    for id in &accounts {
        let r = app.account(id).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged account {id} lost: {}",
            r.text
        );
    }
    let ready = app.readyz().await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
}

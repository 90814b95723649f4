//! Server limits: connection cap, request timeout, Argon2 kept off the async workers.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

async fn raw_get(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0u8; 1024];
    let n = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let app = spawn_app_with(|c| c.server.max_connections = 2).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut first = TcpStream::connect(&address).await.unwrap();
    let mut second = TcpStream::connect(&address).await.unwrap();
    assert!(raw_get(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(raw_get(&mut second).await.starts_with("HTTP/1.1 200"));
    // Both permits are held by open keep-alive connections: a third is not served.
    let mut third = TcpStream::connect(&address).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), raw_get(&mut third)).await;
    assert!(
        waiting.is_err(),
        "a third connection was served past the limit"
    );
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = vec![0u8; 1024];
        let n = third.read(&mut buffer).await.unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    })
    .await
    .expect("served once a slot freed");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

/// Argon2 parameters that take well over a second anywhere.
fn slow_argon2(c: &mut otpd::config::Config) {
    c.argon2.memory_kib = 256 * 1024;
    c.argon2.iterations = 4;
}

#[tokio::test]
async fn a_request_over_its_time_limit_gets_503() {
    let app = spawn_app_with(|c| {
        slow_argon2(c);
        c.server.request_timeout_ms = 50;
    })
    .await;
    let r = app.register(PHONE, "12345678").await;
    assert_eq!((r.status.as_u16(), r.error_code()), (503, "timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_complete_while_logins_queue_for_argon2() {
    let app = std::sync::Arc::new(
        spawn_app_with(|c| {
            slow_argon2(c);
            c.server.argon2_workers = 1;
            // Three slow logins in a row on one worker can pass the
            // default 10 s on a loaded machine; this test is about verifies
            // not waiting for them, not about the time limit (tested above).
            c.server.request_timeout_ms = 120_000;
        })
        .await,
    );
    // Seed the account without Argon2 through the import path (pending; no PIN needed).
    let pending = NewAccount::new(Identity::civil_id("12345678"))
        .phone(PHONE)
        .state("pending_activation");
    let r = app.import(&[pending]).await;
    let account = r.body["results"][0]["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.reset_pin(&account, PIN).await;
    let logins: Vec<_> = (0..3)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { app.login(PHONE, "9135").await.status })
        })
        .collect();
    // While three slow Argon2 logins queue on one worker, a step-up round trip completes.
    let (challenge, code) = app.step_up_code(&account).await;
    let verified = app.step_up_verify(&challenge, &code).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    let still_running = logins.iter().filter(|l| !l.is_finished()).count();
    assert!(still_running > 0, "verify finished only after every login");
    for login in logins {
        assert_eq!(login.await.unwrap(), 401);
    }
}

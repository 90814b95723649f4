//! An integrator's view of `/openapi.json`: a client generated from it by
//! an independent tool (openapi-python-client, pinned in
//! scripts/python-requirements.txt) registers a citizen, logs them in and
//! checks the code, with typed answers and typed errors.

use std::process::Command;

use otpd::config::Config;

use crate::helpers::*;

const TEST_PHONE: &str = "+351910000000";

fn test_destination(c: &mut Config) {
    c.test_mode
        .destinations
        .insert(TEST_PHONE.to_owned(), "123456".to_owned());
}

#[tokio::test]
async fn a_client_generated_from_the_openapi_description_signs_a_citizen_in() {
    let app = spawn_app_with(test_destination).await;
    app.at_real_time();
    let description = app
        .request(hyper::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(description.status, 200);
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("openapi.json");
    std::fs::write(&path, &description.text).unwrap();

    let python = python();
    let generated = Command::new(&python)
        .args(["-m", "openapi_python_client", "generate", "--meta", "none"])
        .arg("--path")
        .arg(&path)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        generated.status.success() && work.path().join("otpd_client").is_dir(),
        "generation failed: {}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );

    // The server runs on this test's runtime: wait for the script off it.
    let mut script = Command::new(&python);
    script
        .arg(repository().join("examples/generated-client/sign_in.py"))
        .args([&app.address, &app.all_key, TEST_PHONE, PIN, "123456"])
        .env("PYTHONPATH", work.path());
    let run = tokio::task::spawn_blocking(move || script.output())
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].starts_with("registered ") && lines[0].ends_with(" active +351******000"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("code sent ") && lines[1].ends_with(" sms +351******000"),
        "{out}"
    );
    assert_eq!(
        lines[2].split(' ').skip(2).collect::<Vec<_>>(),
        ["civil_id", "12345678"],
        "{out}"
    );
    assert_eq!(lines[3], "second use already_used", "{out}");
    assert!(lines[4].ends_with(" active"), "{out}");
    // The same account all along.
    let id = lines[0].split(' ').nth(1).unwrap();
    assert_eq!(lines[2].split(' ').nth(1), Some(id), "{out}");
}

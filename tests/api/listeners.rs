//! The operators' listener (`ops_listen`): health, metrics and the admin
//! API there only; relying parties' routes on the public listener only.

use crate::helpers::*;
use hyper::StatusCode;

#[tokio::test]
async fn each_listener_serves_only_its_own_routes() {
    let app = spawn_app_with(|c| c.ops_listen = "127.0.0.1:0".into()).await;
    let ops = app.ops();
    assert_ne!(ops.address, app.address);
    for (public, operators) in [
        (app.livez().await, ops.livez().await),
        (app.readyz().await, ops.readyz().await),
        (app.metrics().await, ops.metrics().await),
        (
            app.get("/v1/admin/clients", &app.admin_key).await,
            ops.get("/v1/admin/clients", &ops.admin_key).await,
        ),
    ] {
        assert_eq!(public.status, StatusCode::NOT_FOUND, "{}", public.text);
        assert_eq!(public.error_code(), "not_found");
        assert_eq!(operators.status, StatusCode::OK, "{}", operators.text);
    }
    // The public side serves a citizen's whole login.
    let account = app.portal().registered(PHONE, "12345678").await;
    let (challenge, code) = app.login_code(PHONE).await;
    let verified = app.verify(&challenge, &code).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    // ... which the operators' side does not know; its admin API still
    // wants an admin key.
    let refused = ops.with_key(&ops.all_key).login(PHONE, PIN).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
    let unauthorised = ops.get("/v1/admin/clients", &ops.auth_key).await;
    assert_eq!(
        unauthorised.status,
        StatusCode::FORBIDDEN,
        "{}",
        unauthorised.text
    );
    let events = ops
        .get(
            &format!("/v1/admin/accounts/{account}/events"),
            &ops.admin_key,
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    // The metrics count requests on both listeners.
    let metrics = ops.metrics().await.text;
    assert!(metrics.contains("route=\"/v1/login\""), "{metrics}");
    assert!(metrics.contains("route=\"/v1/admin/clients\""), "{metrics}");
}

//! The route table: each endpoint's method, path, scope, body and cost, in one place, and
//! the matcher that finds a request's row.
//!
//! Routing, authorisation, the body limit, what a request spends of the
//! rate limits and whether it takes an `Idempotency-Key` are all read from
//! the row; nothing else matches on paths.

use engine::Scope;
use hyper::Method;

use crate::error::ApiError;
use crate::limits::Cost;

/// What a request asks for, once its method and path are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Livez,
    Readyz,
    Metrics,
    OpenApi,
    Register,
    PreRegister,
    ReadAccount,
    CancelAccount,
    ChangePin,
    BeginContactChange,
    ConfirmContactChange,
    RemoveContact,
    SetLocale,
    PushDevice,
    Login,
    Verify,
    SignatureRequest,
    SignatureVerify,
    KeySet,
    ListKeys,
    RotateKey,
    RetireKey,
    AccountEvents,
    EventFeed,
    EventTrailer,
    AuditInfo,
    StepUp,
    StepUpVerify,
    ChallengeStatus,
    Resend,
    DestinationVerify,
    DestinationCheck,
    DestinationStatus,
    /// The Twilio Verify v2 surface (`twilio/`).
    Twilio(crate::twilio::Operation),
    ActivationRequest,
    ActivationComplete,
    Lock,
    Unlock,
    ResetPin,
    RecoveryUnlock,
    RecoveryPin,
    FindAccounts,
    Import,
    Backup,
    AddClient,
    ListClients,
    ReadClient,
    UpdateClient,
    RevokeClient,
    RotateClientKey,
    RevokeClientKey,
    /// A handler that panics, to test that a panic still gets an answer.
    #[cfg(test)]
    Panic,
}

/// What an endpoint reads from the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Nothing; a body is not read (GET).
    Ignored,
    /// No input: an empty body or `{}`, refused otherwise.
    Empty,
    /// A JSON object within `server.body_limit_bytes`.
    Json,
    /// A JSON object within `server.import_body_limit_bytes`.
    Bulk,
    /// Form parameters (`application/x-www-form-urlencoded`) within
    /// `server.body_limit_bytes`: the Twilio surface.
    Form,
}

/// Whether an endpoint takes an `Idempotency-Key` (`idempotency.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Taken: a retry with the key is answered from the first request.
    Keyed,
    /// Taken, but the answer holds a secret shown once (a new client's
    /// key), which must not rest in the store: a retry is told the request
    /// ran (409) and is not run again.
    KeyedSecret,
    /// Ignored: a read, safe to repeat.
    Unkeyed,
}

/// One row of the table.
#[derive(Debug)]
pub struct Endpoint {
    /// The method; a `GET` row also answers `HEAD`.
    pub method: Method,
    /// The path, with `{…}` for a path parameter (`{id}`, `{name}`,
    /// `{key_id}`); the label in logs and metrics.
    pub path: &'static str,
    /// The handler.
    pub route: Route,
    /// The scope a client needs; `None` for the unauthenticated operations endpoints.
    pub scope: Option<Scope>,
    /// What the body holds.
    pub body: Body,
    /// What a request spends of the per-IP and per-client limits.
    pub cost: Cost,
    /// Whether it takes an `Idempotency-Key`.
    pub retry: Retry,
}

const fn row(
    method: Method,
    path: &'static str,
    route: Route,
    scope: Option<Scope>,
    body: Body,
    cost: Cost,
    retry: Retry,
) -> Endpoint {
    Endpoint {
        method,
        path,
        route,
        scope,
        body,
        cost,
        retry,
    }
}

const AUTH: Option<Scope> = Some(Scope::Auth);
const ACCOUNTS: Option<Scope> = Some(Scope::Accounts);
const ADMIN: Option<Scope> = Some(Scope::Admin);
const SIGN: Option<Scope> = Some(Scope::Sign);
const AUDIT: Option<Scope> = Some(Scope::Audit);
const RECOVERY: Option<Scope> = Some(Scope::Recovery);
const VERIFY: Option<Scope> = Some(Scope::Verify);

/// Every endpoint.
#[rustfmt::skip]
pub static TABLE: &[Endpoint] = {
    use Body::{Bulk, Empty, Form, Ignored, Json};
    use crate::twilio::Operation as T;
    use Cost::{Attempt, Free, Issue, IssueAndAttempt};
    use Method as M;
    use Retry::{Keyed, KeyedSecret, Unkeyed};
    use Route as R;
    &[
        row(M::GET, "/livez", R::Livez, None, Ignored, Free, Unkeyed),
        row(M::GET, "/readyz", R::Readyz, None, Ignored, Free, Unkeyed),
        row(M::GET, "/metrics", R::Metrics, None, Ignored, Free, Unkeyed),
        row(M::GET, "/.well-known/jwks.json", R::KeySet, None, Ignored, Free, Unkeyed),
        row(M::GET, "/openapi.json", R::OpenApi, None, Ignored, Free, Unkeyed),
        row(M::POST, "/v1/accounts", R::Register, ACCOUNTS, Json, Free, Keyed),
        row(M::POST, "/v1/accounts/pre-register", R::PreRegister, ACCOUNTS, Json, Free, Keyed),
        row(M::GET, "/v1/accounts/{id}", R::ReadAccount, ACCOUNTS, Ignored, Free, Unkeyed),
        row(M::DELETE, "/v1/accounts/{id}", R::CancelAccount, ACCOUNTS, Empty, Free, Keyed),
        row(M::POST, "/v1/accounts/{id}/pin", R::ChangePin, ACCOUNTS, Json, Attempt, Keyed),
        row(M::POST, "/v1/accounts/{id}/contact", R::BeginContactChange, ACCOUNTS, Json, IssueAndAttempt, Keyed),
        row(M::PUT, "/v1/accounts/{id}/push-device", R::PushDevice, ACCOUNTS, Json, Free, Keyed),
        row(M::POST, "/v1/accounts/{id}/contact/remove", R::RemoveContact, ACCOUNTS, Json, Attempt, Keyed),
        row(M::PUT, "/v1/accounts/{id}/locale", R::SetLocale, ACCOUNTS, Json, Free, Keyed),
        row(M::POST, "/v1/contact-changes/confirm", R::ConfirmContactChange, ACCOUNTS, Json, Attempt, Keyed),
        row(M::POST, "/v1/login", R::Login, AUTH, Json, IssueAndAttempt, Keyed),
        row(M::POST, "/v1/verify", R::Verify, AUTH, Json, Attempt, Keyed),
        row(M::POST, "/v1/step-up", R::StepUp, AUTH, Json, Issue, Keyed),
        row(M::POST, "/v1/step-up/verify", R::StepUpVerify, AUTH, Json, Attempt, Keyed),
        row(M::POST, "/v1/signatures", R::SignatureRequest, SIGN, Json, IssueAndAttempt, Keyed),
        row(M::POST, "/v1/signatures/verify", R::SignatureVerify, SIGN, Json, Attempt, Keyed),
        row(M::GET, "/v1/challenges/{id}", R::ChallengeStatus, AUTH, Ignored, Free, Unkeyed),
        row(M::POST, "/v1/challenges/{id}/resend", R::Resend, AUTH, Empty, Issue, Keyed),
        row(M::POST, "/v1/destinations/verify", R::DestinationVerify, VERIFY, Json, Issue, Keyed),
        row(M::POST, "/v1/destinations/verify/check", R::DestinationCheck, VERIFY, Json, Attempt, Keyed),
        row(M::GET, "/v1/destinations/verify/{id}", R::DestinationStatus, VERIFY, Ignored, Free, Unkeyed),
        row(M::POST, "/v2/Services", R::Twilio(T::CreateService), VERIFY, Form, Free, Keyed),
        row(M::GET, "/v2/Services/{service_sid}", R::Twilio(T::FetchService), VERIFY, Ignored, Free, Unkeyed),
        row(M::DELETE, "/v2/Services/{service_sid}", R::Twilio(T::DeleteService), VERIFY, Empty, Free, Keyed),
        row(M::POST, "/v2/Services/{service_sid}/Verifications", R::Twilio(T::CreateVerification), VERIFY, Form, Issue, Keyed),
        row(M::GET, "/v2/Services/{service_sid}/Verifications/{sid}", R::Twilio(T::FetchVerification), VERIFY, Ignored, Free, Unkeyed),
        row(M::POST, "/v2/Services/{service_sid}/Verifications/{sid}", R::Twilio(T::UpdateVerification), VERIFY, Form, Free, Keyed),
        row(M::POST, "/v2/Services/{service_sid}/VerificationCheck", R::Twilio(T::CheckVerification), VERIFY, Form, Attempt, Keyed),
        row(M::POST, "/v1/activation/request", R::ActivationRequest, AUTH, Json, Issue, Keyed),
        row(M::POST, "/v1/activation/complete", R::ActivationComplete, AUTH, Json, Attempt, Keyed),
        row(M::POST, "/v1/accounts/{id}/recovery/unlock", R::RecoveryUnlock, RECOVERY, Json, Free, Keyed),
        row(M::POST, "/v1/accounts/{id}/recovery/pin", R::RecoveryPin, RECOVERY, Json, Free, Keyed),
        row(M::GET, "/v1/admin/accounts", R::FindAccounts, ADMIN, Ignored, Free, Unkeyed),
        row(M::POST, "/v1/admin/accounts/{id}/lock", R::Lock, ADMIN, Json, Free, Keyed),
        row(M::POST, "/v1/admin/accounts/{id}/unlock", R::Unlock, ADMIN, Empty, Free, Keyed),
        row(M::POST, "/v1/admin/accounts/{id}/pin-reset", R::ResetPin, ADMIN, Json, Free, Keyed),
        row(M::POST, "/v1/admin/import", R::Import, ADMIN, Bulk, Free, Keyed),
        row(M::POST, "/v1/admin/backup", R::Backup, ADMIN, Empty, Free, Keyed),
        row(M::GET, "/v1/admin/keys", R::ListKeys, ADMIN, Ignored, Free, Unkeyed),
        row(M::POST, "/v1/admin/keys/rotate", R::RotateKey, ADMIN, Empty, Free, Keyed),
        row(M::POST, "/v1/admin/keys/{id}/retire", R::RetireKey, ADMIN, Empty, Free, Keyed),
        row(M::GET, "/v1/admin/accounts/{id}/events", R::AccountEvents, AUDIT, Ignored, Free, Unkeyed),
        row(M::GET, "/v1/admin/events", R::EventFeed, AUDIT, Ignored, Free, Unkeyed),
        row(M::GET, "/v1/admin/events/{id}/trailer", R::EventTrailer, AUDIT, Ignored, Free, Unkeyed),
        row(M::GET, "/v1/admin/audit", R::AuditInfo, AUDIT, Ignored, Free, Unkeyed),
        row(M::POST, "/v1/admin/clients", R::AddClient, ADMIN, Json, Free, KeyedSecret),
        row(M::GET, "/v1/admin/clients", R::ListClients, ADMIN, Ignored, Free, Unkeyed),
        row(M::GET, "/v1/admin/clients/{name}", R::ReadClient, ADMIN, Ignored, Free, Unkeyed),
        row(M::PATCH, "/v1/admin/clients/{name}", R::UpdateClient, ADMIN, Json, Free, Keyed),
        row(M::DELETE, "/v1/admin/clients/{name}", R::RevokeClient, ADMIN, Empty, Free, Keyed),
        row(M::POST, "/v1/admin/clients/{name}/keys", R::RotateClientKey, ADMIN, Json, Free, KeyedSecret),
        row(M::DELETE, "/v1/admin/clients/{name}/keys/{key_id}", R::RevokeClientKey, ADMIN, Empty, Free, Keyed),
        #[cfg(test)]
        row(M::GET, "/test/panic", R::Panic, None, Ignored, Free, Unkeyed),
    ]
};

/// A request's row, and its path parameters if the path has them.
#[derive(Debug)]
pub struct Found {
    /// The row.
    pub endpoint: &'static Endpoint,
    /// The first parameter's segment as sent (`{id}`, `{name}`).
    pub id: Option<String>,
    /// The second parameter's segment as sent (`{key_id}`).
    pub second: Option<String>,
}

/// Finds the row for `method` and `path`. A path no row has is 404 (label
/// `unknown`); a path some row has with other methods is 405 (labelled with
/// the path's template). When a literal segment and a parameter both fit,
/// the literal wins (`/v1/accounts/pre-register` is not an account id).
pub fn find(
    method: &Method,
    path: &str,
    listener: super::Listener,
) -> Result<Found, (ApiError, &'static str)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let fits: Vec<(&'static Endpoint, Params<'_>)> = TABLE
        .iter()
        .filter(|e| listener.serves(e.path))
        .filter_map(|e| matches(e.path, &segments).map(|p| (e, p)))
        .collect();
    let fewest_params = fits.iter().map(|(e, _)| params(e.path)).min();
    let Some(fewest_params) = fewest_params else {
        return Err((ApiError::NotFound, "unknown"));
    };
    let rows: Vec<(&'static Endpoint, Params<'_>)> = fits
        .into_iter()
        .filter(|(e, _)| params(e.path) == fewest_params)
        .collect();
    let wanted = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    if let Some((endpoint, params)) = rows.iter().find(|(e, _)| e.method == wanted) {
        return Ok(Found {
            endpoint,
            id: params[0].map(str::to_owned),
            second: params[1].map(str::to_owned),
        });
    }
    let label = rows.first().map_or("unknown", |(e, _)| e.path);
    let mut allowed = Vec::new();
    for (e, _) in &rows {
        allowed.push(e.method.as_str());
        if e.method == Method::GET {
            allowed.push(Method::HEAD.as_str());
        }
    }
    Err((
        ApiError::MethodNotAllowed {
            path: label,
            allowed,
        },
        label,
    ))
}

/// A path's parameters, in order (at most two).
type Params<'a> = [Option<&'a str>; 2];

/// `Some(params)` when `segments` fit `pattern`.
fn matches<'a>(pattern: &str, segments: &[&'a str]) -> Option<Params<'a>> {
    let parts: Vec<&str> = pattern.split('/').skip(1).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut found: Params<'a> = [None; 2];
    let mut next = found.iter_mut();
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') {
            *next.next()? = Some(*segment);
        } else if part != segment {
            return None;
        }
    }
    Some(found)
}

fn params(pattern: &str) -> usize {
    pattern.matches('{').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Listener;

    /// The one listener there is when `ops_listen` is not set.
    fn find(method: &Method, path: &str) -> Result<Found, (ApiError, &'static str)> {
        super::find(method, path, Listener::All)
    }

    fn found(method: Method, path: &str) -> (Route, &'static str, Option<String>) {
        let f = find(&method, path).unwrap();
        (f.endpoint.route, f.endpoint.path, f.id)
    }

    #[test]
    fn paths_and_methods_map_to_routes_or_clear_errors() {
        assert_eq!(found(Method::GET, "/livez"), (Route::Livez, "/livez", None));
        assert_eq!(
            found(Method::GET, "/v1/accounts/abc"),
            (Route::ReadAccount, "/v1/accounts/{id}", Some("abc".into()))
        );
        assert_eq!(
            found(Method::DELETE, "/v1/accounts/abc/").0,
            Route::CancelAccount
        );
        let (e, label) = find(&Method::GET, "/v1/login").unwrap_err();
        assert_eq!(e.answer().status.as_u16(), 405);
        assert_eq!(label, "/v1/login");
        let (e, label) = find(&Method::GET, "/v2/nothing").unwrap_err();
        assert_eq!((e.answer().status.as_u16(), label), (404, "unknown"));
    }

    #[test]
    fn a_path_takes_two_parameters_in_order() {
        let f = find(
            &Method::DELETE,
            "/v1/admin/clients/portal/keys/0102030405060708",
        )
        .unwrap();
        assert_eq!(f.endpoint.route, Route::RevokeClientKey);
        assert_eq!(f.endpoint.path, "/v1/admin/clients/{name}/keys/{key_id}");
        assert_eq!(
            (f.id.as_deref(), f.second.as_deref()),
            (Some("portal"), Some("0102030405060708"))
        );
        assert_eq!(
            found(Method::PATCH, "/v1/admin/clients/portal"),
            (
                Route::UpdateClient,
                "/v1/admin/clients/{name}",
                Some("portal".into())
            )
        );
        let (e, _) = find(&Method::PUT, "/v1/admin/clients/portal").unwrap_err();
        assert_eq!(
            e.answer().message,
            "/v1/admin/clients/{name} accepts GET, HEAD, PATCH, DELETE"
        );
    }

    #[test]
    fn a_literal_segment_beats_a_path_parameter() {
        assert_eq!(
            found(Method::POST, "/v1/accounts/pre-register").0,
            Route::PreRegister
        );
        let (e, label) = find(&Method::GET, "/v1/accounts/pre-register").unwrap_err();
        assert_eq!(label, "/v1/accounts/pre-register");
        assert_eq!(e.answer().message, "/v1/accounts/pre-register accepts POST");
    }

    #[test]
    fn head_is_answered_wherever_get_is_and_listed_beside_it() {
        assert_eq!(found(Method::HEAD, "/livez").0, Route::Livez);
        assert_eq!(
            found(Method::HEAD, "/v1/challenges/x").0,
            Route::ChallengeStatus
        );
        assert!(find(&Method::HEAD, "/v1/login").is_err());
        let (e, _) = find(&Method::POST, "/v1/accounts/x").unwrap_err();
        assert_eq!(
            e.answer().message,
            "/v1/accounts/{id} accepts GET, HEAD, DELETE"
        );
    }

    #[test]
    fn every_row_has_its_own_method_and_path_and_only_ops_go_without_a_scope() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    (a.method.clone(), a.path) != (b.method.clone(), b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
            let ops = [
                "/livez",
                "/readyz",
                "/metrics",
                "/.well-known/jwks.json",
                "/openapi.json",
                "/test/panic",
            ]
            .contains(&a.path);
            assert_eq!(a.scope.is_none(), ops, "{}", a.path);
            assert_eq!(
                a.method == Method::GET,
                a.body == Body::Ignored,
                "{}",
                a.path
            );
            // Every call that may change state takes a key; reads never do.
            assert_eq!(
                a.method == Method::GET,
                a.retry == Retry::Unkeyed,
                "{}",
                a.path
            );
        }
    }

    #[test]
    fn with_an_operators_listener_each_route_is_served_on_one_listener_only() {
        let on = |listener, method: Method, path: &str| {
            super::find(&method, path, listener).map(|f| f.endpoint.route)
        };
        for (method, path, route) in [
            (Method::GET, "/livez", Route::Livez),
            (Method::GET, "/readyz", Route::Readyz),
            (Method::GET, "/metrics", Route::Metrics),
            (Method::GET, "/v1/admin/clients", Route::ListClients),
            (Method::POST, "/v1/admin/accounts/x/lock", Route::Lock),
        ] {
            assert_eq!(on(Listener::Ops, method.clone(), path).unwrap(), route);
            assert_eq!(on(Listener::All, method.clone(), path).unwrap(), route);
            let (e, label) = on(Listener::Public, method, path).map(|_| ()).unwrap_err();
            assert!(matches!(e, ApiError::NotFound), "{path}: {e:?}");
            assert_eq!(label, "unknown");
        }
        for (method, path, route) in [
            (Method::POST, "/v1/login", Route::Login),
            (Method::POST, "/v1/step-up/verify", Route::StepUpVerify),
            (Method::GET, "/.well-known/jwks.json", Route::KeySet),
        ] {
            assert_eq!(on(Listener::Public, method.clone(), path).unwrap(), route);
            let (e, _) = on(Listener::Ops, method, path).map(|_| ()).unwrap_err();
            assert!(matches!(e, ApiError::NotFound), "{path}: {e:?}");
        }
        // A method the other listener would take is not 405 here either.
        let (e, _) = on(Listener::Public, Method::POST, "/metrics")
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, ApiError::NotFound), "{e:?}");
    }
}

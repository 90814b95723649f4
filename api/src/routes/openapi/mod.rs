//! The OpenAPI 3.1 description of the API, generated from the route table
//! (methods, paths, scopes, bodies, idempotency) and the request and answer
//! types themselves, so it cannot drift from what is served. Served at
//! `GET /openapi.json`; committed as `docs/openapi.json` (a test keeps the
//! two equal).

mod operations;

use std::collections::BTreeMap;

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
    Ref, Required, ResponseBuilder, Schema, Type,
};

use super::table::{Body, Endpoint, Retry, TABLE};
use operations::{Answer, Doc, Ty, describe, error_body};

/// What each error status means, for every operation that can answer it.
fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => {
            "A field failed validation, or the body is not the JSON this endpoint takes (`field` names it)"
        }
        401 => "No valid client key; or wrong credentials or a wrong code (`code` says which)",
        403 => "The client lacks the scope, or its policy forbids this",
        404 => "No such account, challenge, client or key (for this client)",
        408 => "The body did not arrive in time",
        409 => {
            "Not possible now (`code` says why), or an Idempotency-Key whose answer was not kept"
        }
        410 => "The code can never be accepted: expired, superseded, exhausted or used",
        413 => "The body is too large",
        415 => "The body is not application/json",
        422 => "The Idempotency-Key was used before with another request",
        423 => "The account is locked",
        429 => "A rate limit or SMS budget refused it; Retry-After says when to retry",
        503 => "Draining, timed out, or the store cannot take writes",
        _ => "An error",
    }
}

/// The errors `endpoint` can answer besides those particular to it.
fn common_errors(endpoint: &Endpoint) -> Vec<u16> {
    let mut errors = vec![503];
    if endpoint.scope.is_some() {
        errors.extend([401, 403]);
    }
    if endpoint.path.contains('{') {
        // A malformed id is 400 naming it; a well-formed one nobody has, 404.
        errors.extend([400, 404]);
    }
    match endpoint.body {
        Body::Json | Body::Bulk => errors.extend([400, 408, 413, 415]),
        Body::Empty => errors.extend([400, 408, 413]),
        Body::Ignored | Body::Form => {}
    }
    if endpoint.retry != Retry::Unkeyed {
        errors.extend([400, 409, 422]);
    }
    if endpoint.cost != crate::limits::Cost::Free {
        errors.push(429);
    }
    errors
}

fn schema_ref(ty: Ty) -> Ref {
    Ref::from_schema_name((ty.name)())
}

fn json(ty: Ty) -> Content {
    Content::new(Some(schema_ref(ty)))
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn operation(endpoint: &Endpoint, doc: &Doc) -> utoipa::openapi::path::Operation {
    let id = format!("{:?}", endpoint.route);
    let id = id[..1].to_lowercase() + &id[1..];
    let mut description = match endpoint.scope {
        Some(scope) => format!("Scope `{}`.", scope.as_str()),
        None => "No client key.".to_owned(),
    };
    if endpoint.retry == Retry::KeyedSecret {
        description.push_str(
            " The answer holds a key shown once: a retry with the same Idempotency-Key \
             is told the request ran (409) and is not run again.",
        );
    }
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(doc.summary))
        .description(Some(description))
        .tag(doc.tag);
    for name in path_parameters(endpoint.path) {
        let (what, pattern) = path_parameter(endpoint.path, name);
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(what))
                .schema(Some(string_schema().pattern(Some(pattern)))),
        );
    }
    for (name, what, number) in doc.query {
        let schema = if *number {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
        } else {
            string_schema()
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*what))
                .schema(Some(schema)),
        );
    }
    if endpoint.retry != Retry::Unkeyed {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Retries with the same key get the first request's answer, \
                     and the request is carried out at most once",
                ))
                .schema(Some(
                    string_schema()
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[\\x21-\\x7e]+$")),
                )),
        );
    }
    if let Some(request) = doc.request {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json(request))
                .build(),
        ));
    } else if endpoint.body == Body::Empty {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::False))
                .description(Some("Nothing, or `{}`"))
                .content(
                    "application/json",
                    Content::new(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(
                                false,
                            ))),
                    )),
                )
                .build(),
        ));
    }
    let ok = ResponseBuilder::new().description(doc.summary);
    let ok = match doc.answer {
        Answer::Json(ty) => ok.content("application/json", json(ty)),
        Answer::Text => ok.content(
            "text/plain; version=0.0.4",
            Content::new(Some(string_schema())),
        ),
        Answer::OpenApi => ok.content(
            "application/json",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
        ),
    };
    let ok = doc
        .links
        .iter()
        .fold(ok, |ok, (operation, parameter, value)| {
            ok.link(
                *operation,
                LinkBuilder::new()
                    .operation_id(*operation)
                    .parameter(*parameter, *value)
                    .build(),
            )
        });
    op = op.response(doc.status.to_string(), ok.build());
    let mut errors = common_errors(endpoint);
    errors.extend_from_slice(doc.errors);
    if !doc.query.is_empty() {
        errors.push(400);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        op = op.response(status.to_string(), error_response(Some(status)));
    }
    op = op.response("default", error_response(None));
    if endpoint.scope.is_none() {
        // No client key: an empty requirement overrides the document's.
        op = op.security(SecurityRequirement::default());
    }
    op.build()
}

/// The statuses every error response of the document is one of.
const ERROR_STATUSES: [u16; 13] = [
    400, 401, 403, 404, 408, 409, 410, 413, 415, 422, 423, 429, 503,
];

fn error_name(status: Option<u16>) -> String {
    status.map_or_else(|| "Error".to_owned(), |s| format!("Error{s}"))
}

/// A reference to the shared error response of `status` (`None`: any other).
fn error_response(status: Option<u16>) -> Ref {
    Ref::new(format!("#/components/responses/{}", error_name(status)))
}

/// The shared error responses, by name.
fn error_responses() -> Vec<(String, utoipa::openapi::Response)> {
    let statuses = ERROR_STATUSES.iter().copied().map(Some).chain([None]);
    statuses
        .map(|status| {
            let description = match status {
                Some(status) => error_meaning(status),
                None => "Any other error (500 `internal` is a bug; its cause is logged)",
            };
            (
                error_name(status),
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", json(error_body()))
                    .build(),
            )
        })
        .collect()
}

/// What a path parameter is, and the form it takes.
fn path_parameter(path: &str, name: &str) -> (&'static str, &'static str) {
    const HEX32: &str = "^[0-9a-fA-F]{32}$";
    match name {
        "name" => ("A client's name", "^[^/]+$"),
        "key_id" => ("One of the client's keys", "^[0-9a-fA-F]{16}$"),
        _ if path.starts_with("/v1/admin/events/") => {
            ("An event's sequence number", "^[0-9]{1,19}$")
        }
        _ if path.starts_with("/v1/admin/keys/") => (
            "A signing key's kid (RFC 7638 thumbprint)",
            "^[A-Za-z0-9_-]{43}$",
        ),
        _ if path.starts_with("/v1/challenges/") => ("A challenge id", HEX32),
        _ => ("An account id", HEX32),
    }
}

/// `{name}` segments of a path, in order.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn method(m: &hyper::Method) -> HttpMethod {
    match *m {
        hyper::Method::GET => HttpMethod::Get,
        hyper::Method::PUT => HttpMethod::Put,
        hyper::Method::PATCH => HttpMethod::Patch,
        hyper::Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Post,
    }
}

/// The description of every endpoint in the route table.
pub fn document() -> OpenApi {
    let mut items: BTreeMap<&'static str, PathItem> = BTreeMap::new();
    let mut schemas = vec![(error_body().collect)];
    let mut tags: Vec<&'static str> = Vec::new();
    for endpoint in TABLE {
        #[cfg(test)]
        if endpoint.path == "/test/panic" {
            continue;
        }
        // Twilio's own description covers its surface (docs/TWILIO.md).
        if crate::twilio::is_twilio(endpoint.path) {
            continue;
        }
        let doc = describe(endpoint.route);
        if let Some(request) = doc.request {
            schemas.push(request.collect);
        }
        if let Answer::Json(ty) = doc.answer {
            schemas.push(ty.collect);
        }
        if !tags.contains(&doc.tag) {
            tags.push(doc.tag);
        }
        let op = operation(endpoint, &doc);
        let m = method(&endpoint.method);
        match items.get_mut(endpoint.path) {
            Some(item) => item.merge_operations(PathItem::new(m, op)),
            None => {
                items.insert(endpoint.path, PathItem::new(m, op));
            }
        }
    }
    let mut collected = Vec::new();
    for collect in schemas {
        collect(&mut collected);
    }
    let mut paths = PathsBuilder::new();
    for (path, item) in items {
        paths = paths.path(path, item);
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(collected)
        .responses_from_iter(error_responses())
        .security_scheme(
            "client_key",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A client (relying party) key: `Authorization: Bearer otpd_…`",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "client_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "Where the operator serves TLS with client certificates and maps this \
                     client's certificate to it: the certificate instead of the key, or \
                     (mode `also`) both"
                        .to_owned(),
                ),
                extensions: None,
            },
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("otpd")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "One-time codes for citizens' sign-in: register, log in with a PIN and a \
                     code, step up, authorise signatures, activate, recover. docs/API.md has \
                     the rules behind each endpoint.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .security(Some([
            SecurityRequirement::new("client_key", Vec::<String>::new()),
            SecurityRequirement::new("client_certificate", Vec::<String>::new()),
            SecurityRequirement::new("client_key", Vec::<String>::new())
                .add("client_certificate", Vec::<String>::new()),
        ]))
        .tags(Some(
            tags.into_iter().map(|t| TagBuilder::new().name(t).build()),
        ))
        .build()
}

/// [`document`] as the JSON served and committed: pretty, with a final
/// newline; made once.
pub fn document_json() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        // utoipa's own order (openapi, info, paths, components), which a
        // serde_json::Value would sort away.
        let mut text = document().to_pretty_json().unwrap_or_default();
        link_operation_ids(&mut text);
        text.push('\n');
        text
    })
}

/// utoipa 5 writes a link's `operationId` as `operation_id`, which no
/// OpenAPI reader knows. No other object of the document has a member of
/// that name (no schema property is called so: a test checks), so the key
/// is renamed in the text.
fn link_operation_ids(text: &mut String) {
    *text = text.replace("\"operation_id\": ", "\"operationId\": ");
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn committed_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
    }

    /// `docs/openapi.json` is what the code generates. After changing an
    /// endpoint or a type, refresh it with
    /// `OTPD_WRITE_OPENAPI=1 cargo test -p otpd --lib openapi`.
    #[test]
    fn the_committed_description_is_the_generated_one() {
        let generated = document_json();
        let path = committed_path();
        if std::env::var_os("OTPD_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from the generated description: run \
             `OTPD_WRITE_OPENAPI=1 cargo test -p otpd --lib openapi` and commit it"
        );
    }

    #[test]
    fn links_are_the_only_objects_with_an_operation_id_member() {
        let raw = serde_json::to_string(&document()).unwrap();
        let links = raw.matches("\"links\":").count();
        assert!(links > 0);
        let doc: Value = serde_json::from_str(&raw).unwrap();
        let mut named = 0;
        fn walk(v: &Value, in_links: bool, named: &mut usize) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        if k == "operation_id" {
                            assert!(in_links, "operation_id outside links");
                            *named += 1;
                        }
                        walk(v, k == "links" || (in_links && k != "parameters"), named);
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, in_links, named)),
                _ => {}
            }
        }
        walk(&doc, false, &mut named);
        assert!(named > 0);
        assert!(!document_json().contains("\"operation_id\""));
        assert!(document_json().starts_with("{\n  \"openapi\": \"3.1.0\""));
    }

    #[test]
    fn every_endpoint_is_described_with_its_method_parameters_and_answers() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut operations = 0;
        for endpoint in TABLE
            .iter()
            .filter(|e| e.path != "/test/panic" && !crate::twilio::is_twilio(e.path))
        {
            let method = endpoint.method.as_str().to_lowercase();
            let op = &doc["paths"][endpoint.path][&method];
            assert!(
                op.is_object(),
                "{} {} is not described",
                endpoint.method,
                endpoint.path
            );
            operations += 1;
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in path_parameters(endpoint.path) {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{} lacks path parameter {name}",
                    endpoint.path
                );
            }
            let keyed = params.iter().any(|p| p["name"] == "Idempotency-Key");
            assert_eq!(keyed, endpoint.retry != Retry::Unkeyed, "{}", endpoint.path);
            let secured = op.get("security").is_none();
            assert_eq!(secured, endpoint.scope.is_some(), "{}", endpoint.path);
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{}",
                endpoint.path
            );
            assert!(responses.contains_key("default"), "{}", endpoint.path);
            if endpoint.body == Body::Json || endpoint.body == Body::Bulk {
                assert_eq!(op["requestBody"]["required"], true, "{}", endpoint.path);
            }
        }
        let described: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(described, operations, "an operation no row has");
    }

    /// Every link names an operation and a path parameter it has.
    #[test]
    fn every_link_leads_to_an_operation_and_its_parameter() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        let mut operations = std::collections::HashMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                operations.insert(op["operationId"].as_str().unwrap().to_owned(), op.clone());
            }
        }
        let mut links = 0;
        for op in operations.values() {
            for response in op["responses"].as_object().unwrap().values() {
                let Some(found) = response.get("links").and_then(Value::as_object) else {
                    continue;
                };
                for link in found.values() {
                    links += 1;
                    let target = &operations[link["operationId"].as_str().unwrap()];
                    for name in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            target["parameters"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|p| p["name"] == name.as_str() && p["in"] == "path"),
                            "{link}"
                        );
                    }
                }
            }
        }
        assert!(links >= 20, "{links}");
    }

    /// Every `$ref` names a schema the document holds.
    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(v: &'a Value, into: &mut Vec<&'a str>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        into.push(r);
                    }
                    map.values().for_each(|v| refs(v, into));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, into)),
                _ => {}
            }
        }
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 100, "{}", found.len());
        for r in found {
            let mut at = &doc;
            for part in r.strip_prefix("#/").unwrap().split('/') {
                at = &at[part];
            }
            assert!(at.is_object(), "{r} does not resolve");
        }
    }

    /// Request types refuse what the description says they refuse.
    #[test]
    fn request_schemas_forbid_unknown_fields_as_the_parser_does() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        let login = &doc["components"]["schemas"]["LoginIn"];
        assert_eq!(login["additionalProperties"], false, "{login}");
        assert_eq!(login["required"], serde_json::json!(["pin"]));
        assert_eq!(login["properties"]["pin"]["type"], "string");
    }
}

//! `openapi/openapi.json` is generated from the code; this fails when they differ.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test --test integration openapi` or
//! `cargo run -- openapi > openapi/openapi.json`.

#[test]
fn committed_openapi_matches_the_code() {
    let generated = tokenhub::http::openapi::document_json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{e}"));
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let spec: serde_json::Value =
        serde_json::from_str(&tokenhub::http::openapi::document_json()).unwrap_or_default();
    let public = ["/healthz", "/readyz", "/metrics"];
    for (path, item) in spec["paths"].as_object().cloned().unwrap_or_default() {
        if public.contains(&path.as_str()) {
            continue;
        }
        for (method, op) in item.as_object().cloned().unwrap_or_default() {
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            // Operations that take no credentials (`security: []`) have no 401 to document.
            let open = op["security"].as_array().is_some_and(|s| {
                s.is_empty() || s.iter().all(|x| x.as_object().is_some_and(|o| o.is_empty()))
            });
            if !open {
                assert!(responses.contains_key("401"), "{method} {path} must document 401");
            }
            assert!(responses.contains_key("503"), "{method} {path} must document 503");
        }
    }
}

#[test]
fn every_reference_resolves() {
    use serde_json::Value;
    // A `$ref` to a schema that is not in `components` (e.g. an enum used only in a query's
    // parameters) breaks every client generator and the contract check.
    let spec: Value = serde_json::from_str(&tokenhub::http::openapi::document_json()).unwrap();
    fn walk(v: &Value, spec: &Value, missing: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let name = r.trim_start_matches("#/components/schemas/");
                    if spec["components"]["schemas"].get(name).is_none() {
                        missing.push(r.clone());
                    }
                }
                map.values().for_each(|x| walk(x, spec, missing));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, spec, missing)),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&spec, &spec, &mut missing);
    assert!(missing.is_empty(), "unresolvable references: {missing:?}");
}

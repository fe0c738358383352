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

/// Every error code a response's description names (in backticks; other backticked words are
/// field names) is documented under that code's one status: the document cannot list a code
/// under a status it is never answered with.
#[test]
fn every_documented_error_code_is_under_its_status() {
    use serde_json::Value;
    use tokenhub::error::Code;
    let spec: Value = serde_json::from_str(&tokenhub::http::openapi::document_json()).unwrap();
    let mut wrong = Vec::new();
    for (path, item) in spec["paths"].as_object().cloned().unwrap_or_default() {
        for (method, op) in item.as_object().cloned().unwrap_or_default() {
            for (status, response) in op["responses"].as_object().cloned().unwrap_or_default() {
                let Ok(status) = status.parse::<u16>() else { continue };
                if status < 400 {
                    continue;
                }
                let description = response["description"].as_str().unwrap_or_default();
                for name in description.split('`').skip(1).step_by(2) {
                    match Code::parse(name) {
                        Some(code) if code.status() == status => {}
                        Some(code) => wrong.push(format!(
                            "{method} {path}: `{name}` is documented under {status}, but answers {}",
                            code.status()
                        )),
                        None => {}
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} documented codes are wrong:\n{}", wrong.len(), wrong.join("\n"));
}

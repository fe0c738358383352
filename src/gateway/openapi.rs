//! The gateway's OpenAPI document (`GET /openapi.json` on the gateway, `tokenhub openapi
//! --gateway`, kept in `openapi/gateway.json`): its three routes, the request fields it reads
//! (everything else goes to the upstream untouched), and every refusal in OpenAI's error
//! shape. The contract check runs schemathesis against a live gateway with it.

use serde_json::{json, Value};

/// The document.
pub fn document() -> Value {
    let error = |description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
    };
    let refusals = |extra: &[(&str, &str)]| {
        let mut responses = serde_json::Map::new();
        let common = [
            ("400", "`invalid_request`: the body is not a JSON object, or lacks a field the route needs; or the upstream's own 400"),
            ("401", "`missing_credentials`, `MALFORMED`, `NOT_FOUND`, `DISABLED`, `REVOKED`, `EXPIRED`, `TENANT_DELETED`; or the upstream's own 401"),
            ("403", "`IP_NOT_ALLOWED`, `MODEL_NOT_ALLOWED`, `TENANT_SUSPENDED`, `SUB_ACCOUNT_DISABLED`, `SUB_ACCOUNT_DELETED`, `data_key_required`, `permission_denied`"),
            ("404", "`model_not_found`: no provider of the tenant or the platform serves the model"),
            ("413", "`body_too_large`: the body is over 8 MiB"),
            ("429", "`QUOTA_EXCEEDED` or `RATE_LIMITED` (with `Retry-After`); or the upstream's own 429"),
            ("502", "`upstream_unavailable`, `upstream_refused`, `upstream_answer_too_large`; or the upstream's own 502"),
            ("503", "`service_unavailable`: the tenant's providers cannot be read now"),
            ("504", "`upstream_timeout`"),
        ];
        for (status, description) in common.iter().chain(extra) {
            responses.insert((*status).into(), error(description));
        }
        responses
    };
    let passed_through = [
        ("422", "The upstream's own refusal, passed through with its status"),
        ("500", "The upstream's own failure, passed through with its status"),
    ];
    let mut chat_responses = refusals(&passed_through);
    chat_responses.insert(
        "200".into(),
        json!({"description": "The upstream's completion; with `\"stream\": true`, its server-sent events, chunk by chunk",
               "headers": {"X-Request-Id": {"description": "The request's id, also its usage record's id (`gw_…`)", "schema": {"type": "string"}}},
               "content": {
                   "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
                   "text/event-stream": {"schema": {"type": "object", "description": "Each server-sent event: its `data` is a chunk (JSON), then `[DONE]`",
                       "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}}}}
               }}),
    );
    let mut embedding_responses = refusals(&passed_through);
    embedding_responses.insert(
        "200".into(),
        json!({"description": "The upstream's embeddings",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingList"}}}}),
    );
    let mut model_responses = serde_json::Map::new();
    model_responses.insert(
        "200".into(),
        json!({"description": "The models this key may use",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}}}),
    );
    for (status, description) in [
        ("401", "`missing_credentials`, `MALFORMED`, `NOT_FOUND`, `DISABLED`, `REVOKED`, `EXPIRED`, `TENANT_DELETED`"),
        ("403", "`IP_NOT_ALLOWED`, `TENANT_SUSPENDED`, `SUB_ACCOUNT_DISABLED`, `SUB_ACCOUNT_DELETED`, `data_key_required`"),
        ("429", "`QUOTA_EXCEEDED` or `RATE_LIMITED` (with `Retry-After`)"),
        ("503", "`not_ready` (the gateway has not caught up with the log yet) or `service_unavailable`"),
    ] {
        model_responses.insert(status.into(), error(description));
    }
    let model = |example: &str| {
        json!({"type": "string", "minLength": 1, "maxLength": 256, "example": example,
            "description": "The model; the provider that serves it takes the request"})
    };
    let tokens =
        json!({"type": ["integer", "null"], "minimum": 0, "maximum": super::request::MAX_TOKENS_BOUND});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "TokenHub gateway",
            "license": {"name": "Apache-2.0"},
            "version": env!("CARGO_PKG_VERSION"),
            "description": "OpenAI-compatible routes for a TokenHub data key (`tokenhub gateway`, docs/gateway.md). The key's policy is applied before forwarding; key-bound tags are injected server-side; every forwarded request is metered once; no content is kept. Fields the gateway does not read go to the upstream unchanged."
        },
        "servers": [{"url": "/", "description": "this gateway"}],
        "security": [{"dataKey": []}],
        "paths": {
            "/v1/chat/completions": {"post": {
                "operationId": "createChatCompletion",
                "summary": "A chat completion, streaming or not, from the provider of `model`",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}},
                "responses": chat_responses
            }},
            "/v1/embeddings": {"post": {
                "operationId": "createEmbedding",
                "summary": "Embeddings from the provider of `model`",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}}},
                "responses": embedding_responses
            }},
            "/v1/models": {"get": {
                "operationId": "listModels",
                "summary": "The models this key may use: its providers' models within its model allowlist",
                "responses": model_responses
            }}
        },
        "components": {
            "securitySchemes": {"dataKey": {"type": "http", "scheme": "bearer", "description": "A TokenHub data key (`thk_…`)"}},
            "schemas": {
                "ChatCompletionRequest": {
                    "type": "object", "required": ["model", "messages"],
                    "properties": {
                        "model": model("gpt-4o-mini"),
                        "messages": {"type": "array", "minItems": 1, "items": {
                            "type": "object", "required": ["role"],
                            "properties": {"role": {"type": "string", "minLength": 1, "description": "`system`, `developer`, `user`, `assistant`, `tool`, …: passed on as given"},
                                           "content": {"type": ["string", "array", "null"]}}}},
                        "stream": {"type": ["boolean", "null"]},
                        "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": ["boolean", "null"]}}},
                        "max_tokens": tokens,
                        "max_completion_tokens": tokens,
                        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": super::request::MAX_CHOICES,
                            "description": "Choices to generate; the quota reservation is `max_tokens` for each"},
                        "tensorzero::tags": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                            "description": "For a `tensorzero` provider: the client's tags; the key-bound tags win"}
                    }
                },
                "EmbeddingRequest": {
                    "type": "object", "required": ["model", "input"],
                    "properties": {
                        "model": model("text-embedding-3-small"),
                        "input": {"oneOf": [
                            {"type": "string", "minLength": 1},
                            {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                            {"type": "array", "minItems": 1, "items": {"type": "integer"}},
                            {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 1, "items": {"type": "integer"}}}
                        ]}
                    }
                },
                "ChatCompletion": {"type": "object", "required": ["choices"], "properties": {
                    "id": {"type": "string"}, "object": {"type": "string"}, "model": {"type": "string"},
                    "choices": {"type": "array"},
                    "usage": {"$ref": "#/components/schemas/Usage"}
                }},
                "EmbeddingList": {"type": "object", "required": ["data"], "properties": {
                    "object": {"type": "string"}, "model": {"type": "string"},
                    "data": {"type": "array", "items": {"type": "object", "properties": {"embedding": {}, "index": {"type": "integer"}}}},
                    "usage": {"$ref": "#/components/schemas/Usage"}
                }},
                "Usage": {"type": ["object", "null"], "properties": {
                    "prompt_tokens": {"type": ["integer", "null"]}, "completion_tokens": {"type": ["integer", "null"]},
                    "total_tokens": {"type": ["integer", "null"]}
                }},
                "ModelList": {"type": "object", "required": ["object", "data"], "additionalProperties": false, "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": {"type": "object", "required": ["id", "object", "created", "owned_by"], "additionalProperties": false,
                        "properties": {"id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                                       "owned_by": {"type": "string", "description": "The provider's name"}}}}
                }},
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["message", "type"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string", "description": "OpenAI's error type: `invalid_request_error`, `authentication_error`, `permission_error`, `insufficient_quota`, `rate_limit_error`, `api_error`"},
                        "code": {"type": ["string", "null"], "description": "TokenHub's code (for the gateway's own refusals)"},
                        "param": {"type": ["string", "null"]}
                    }
                }}}
            }
        }
    })
}

/// The document as `openapi/gateway.json` holds it.
pub fn document_json() -> String {
    let mut json = serde_json::to_string_pretty(&document()).unwrap_or_default();
    json.push('\n');
    json
}

//! `/openapi/v2` and `/openapi/v3`: the documents `rkube-openapi` renders once per
//! process, also the type information the patch engines merge by.

use std::sync::LazyLock;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use rkube_apimachinery::ApiError;
use rkube_openapi::OpenApi;
use rkube_patch::apply::CreatedFieldsMemo;

static OPENAPI: LazyLock<OpenApi> = LazyLock::new(OpenApi::build);

/// The media type of the protobuf form of `/openapi/v2` that client-go asks for.
const PROTOBUF_V2: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// What upstream answers it with: `@` is not allowed in a media type Go can parse.
const PROTOBUF_V2_ANSWER: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The rendered documents. The first call renders them (a few hundred milliseconds), so
/// the server calls it once before it listens.
pub fn get() -> &'static OpenApi {
    &OPENAPI
}

/// Creates' managed fields by object shape, for [`patch_schema`] (and only for it: the
/// sets it holds were computed with those definitions).
static CREATED_FIELDS: LazyLock<CreatedFieldsMemo> = LazyLock::new(CreatedFieldsMemo::new);

/// The served types' schema for patches and managed fields.
pub fn patch_schema() -> rkube_patch::Schema<'static> {
    rkube_patch::Schema::new(get().schemas()).remembering_creates(&CREATED_FIELDS)
}

fn bytes_response(body: &'static [u8], content_type: &'static str, etag: Option<&str>, immutable: bool) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&format!("\"{t}\"")).ok()) {
        h.insert(header::ETAG, tag);
    }
    // The hash in a v3 URL names exactly one body, so clients may keep it forever, as
    // upstream lets them.
    let cache = if immutable { "public, immutable" } else { "no-cache, private" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// GET /openapi/v2, /openapi/v3, /openapi/v3/<group-version path>.
pub fn serve(rest: &[&str], accept: Option<&str>) -> Result<Response, ApiError> {
    let docs = get();
    match rest {
        ["v2"] => {
            // The first acceptable entry of the Accept header decides, as upstream.
            for entry in accept.unwrap_or("application/json").split(',') {
                let media = entry.split(';').next().unwrap_or("").trim();
                match media {
                    PROTOBUF_V2 | PROTOBUF_V2_ANSWER => {
                        return Ok(bytes_response(docs.v2_protobuf(), PROTOBUF_V2_ANSWER, Some(docs.v2_hash()), false));
                    }
                    "application/json" | "*/*" | "application/*" | "" => {
                        return Ok(bytes_response(docs.v2_document(), "application/json", Some(docs.v2_hash()), false));
                    }
                    _ => {}
                }
            }
            Err(ApiError::NotAcceptable {
                message: format!("/openapi/v2 is served as application/json or {PROTOBUF_V2}"),
            })
        }
        ["v3"] => Ok(bytes_response(docs.v3_index(), "application/json", None, false)),
        ["v3", gv @ ..] => {
            let key = gv.join("/");
            let (hash, body) = docs.v3_document(&key).ok_or(ApiError::NoRoute)?;
            Ok(bytes_response(body, "application/json", Some(hash), true))
        }
        _ => Err(ApiError::NoRoute),
    }
}

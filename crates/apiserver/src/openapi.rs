//! `/openapi/v2` and `/openapi/v3`: the documents `rkube-openapi` renders once per
//! process, also the type information the patch engines merge by.

use std::sync::LazyLock;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use rkube_apimachinery::ApiError;
use rkube_openapi::OpenApi;

static OPENAPI: LazyLock<OpenApi> = LazyLock::new(OpenApi::build);

/// The rendered documents. The first call renders them (a few hundred milliseconds), so
/// the server calls it once before it listens.
pub fn get() -> &'static OpenApi {
    &OPENAPI
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
            // We only render JSON; kubectl asks for protobuf only when v3 is missing.
            if accept.is_some_and(|a| !a.contains("json") && !a.contains("*/*")) {
                return Err(ApiError::NotAcceptable {
                    message: "only application/json is served for /openapi/v2".into(),
                });
            }
            Ok(bytes_response(docs.v2_document(), "application/json", Some(docs.v2_hash()), false))
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

//! Creating an upload the draft's way: `POST /files/` with the version's
//! completeness header, and a body that is all, part or none of the file.
//! The length comes from `Upload-Length`, or from `Content-Length` when the
//! request completes the upload; both given must agree.

use super::problem::{problem, Standing};
use super::Interop;
use crate::core::error::{Error, ErrorCode};
use crate::core::{AppendRequest, Concat, CreateRequest, Owner};
use crate::http::headers::{
    caller, content_type_is, header_error, header_str, idempotency_key, parse_concat,
    parse_sha256_digest, public_base, set, u64_header,
};
use crate::http::{body_stream, skip_bytes};
use crate::protocol::ietf;
use crate::protocol::metadata::Metadata;
use crate::protocol::{header, key, upload_url};
use crate::server::state::AppState;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// `/files/` for a draft request: creation by POST.
pub(in crate::http) async fn collection(
    state: &AppState,
    owner: Owner,
    v: Interop,
    method: Method,
    req: Request,
) -> Response {
    if !v.is_supported() {
        return unsupported(v);
    }
    if method != Method::POST {
        let e = Error::new(
            ErrorCode::MethodNotAllowed,
            "Create an upload with POST; it is then at its own URL.",
        );
        return problem(v, e, collection_standing());
    }
    create(state, owner, v, req)
        .await
        .unwrap_or_else(|e| problem(v, e, collection_standing()))
}

fn collection_standing() -> Standing {
    Standing {
        collection: true,
        ..Standing::default()
    }
}

/// Answers a version this server does not speak.
pub(super) fn unsupported(v: Interop) -> Response {
    let e = Error::new(
        ErrorCode::UnsupportedVersion,
        format!(
            "This server speaks Upload-Draft-Interop-Version {} to {} (and tus 1.0.0), not that one.",
            ietf::VERSIONS.start(),
            ietf::VERSIONS.end(),
        ),
    );
    problem(v, e, Standing::default())
}

/// The file's name and type from the draft's representation headers, when
/// the client sent no tus `Upload-Metadata`.
fn metadata_of(headers: &HeaderMap) -> crate::core::error::Result<Metadata> {
    if let Some(v) = header_str(headers, header::UPLOAD_METADATA)? {
        return Ok(Metadata::parse(v)?);
    }
    // The upload protocols' own media types say nothing about the file.
    let mime = header_str(headers, "content-type")?
        .filter(|_| {
            !content_type_is(headers, ietf::PARTIAL_UPLOAD)
                && !content_type_is(headers, crate::protocol::OFFSET_OCTET_STREAM)
        })
        .unwrap_or("");
    let name = header_str(headers, "content-disposition")?
        .and_then(|d| {
            d.split(';').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("filename")
                    .then(|| v.trim().trim_matches('"').to_string())
            })
        })
        .unwrap_or_default();
    let pairs = [(key::FILENAME, name.as_str()), (key::FILETYPE, mime)];
    Ok(Metadata::parse(&Metadata::from_pairs(pairs).encode())?)
}

async fn create(
    state: &AppState,
    owner: Owner,
    v: Interop,
    req: Request,
) -> Result<Response, Error> {
    let headers = req.headers();
    if headers.contains_key(ietf::UPLOAD_OFFSET) {
        return Err(header_error(
            ietf::UPLOAD_OFFSET,
            "a creation request starts at 0 and does not say so",
        ));
    }
    // tus-js-client's parallel uploads join their parts with tus's header.
    let concat = match header_str(headers, header::UPLOAD_CONCAT)? {
        Some(value) => parse_concat(value)?,
        None => Concat::None,
    };
    let complete = v.completeness(headers)?;
    if complete.is_none() && !matches!(concat, Concat::Final(_)) {
        return Err(header_error(
            if v.0 == 3 {
                ietf::UPLOAD_INCOMPLETE
            } else {
                ietf::UPLOAD_COMPLETE
            },
            "a creation request must say whether it carries the whole upload",
        ));
    }
    let declared = u64_header(headers, ietf::UPLOAD_LENGTH)?;
    let content_length = u64_header(headers, "content-length")?;
    // A body of unannounced length (chunked, or an HTTP/2 stream) is a
    // body until it is seen to be empty.
    let has_body = match content_length {
        Some(n) => n > 0,
        None => !http_body::Body::is_end_stream(req.body()),
    };
    let length = match (declared, complete, content_length) {
        (Some(l), Some(true), Some(cl)) if l != cl => {
            return Err(Error::new(
                ErrorCode::LengthAlreadySet,
                format!(
                    "Upload-Length says {l} bytes but this request completes the upload with {cl}."
                ),
            ))
        }
        (Some(l), _, _) => Some(l),
        (None, Some(true), Some(cl)) => Some(cl),
        _ => None,
    };
    let mut metadata = metadata_of(headers)?;
    // A whole-file SHA-256 promised in `Repr-Digest` is kept with the
    // upload: it allows an instant upload, and the finished file is held
    // to it.
    if let Some(value) = header_str(headers, "repr-digest")? {
        if let Some(sha) = parse_sha256_digest("repr-digest", value)? {
            metadata = metadata.with(key::SHA256, &crate::core::hash::hex(&sha));
        }
    }
    let checksum = super::resource::digest_checksum(headers)?;
    let idempotency_key = idempotency_key(headers)?;
    let base = public_base(headers, req.uri(), state.config.behind_proxy);
    let caller = caller(state, &req);
    let mut record = state
        .uploads
        .create(CreateRequest {
            owner,
            length,
            metadata,
            concat,
            caller: caller.clone(),
            idempotency_key,
        })
        .await?;
    let location = base.unwrap_or_default() + &upload_url(record.id.as_str());

    let finish_empty = complete == Some(true) && !record.is_complete();
    let mut failure = None;
    // An instant upload (its SHA-256 already stored) takes no bytes.
    let takes_bytes = !record.is_complete() && !matches!(record.concat, Concat::Final(_));
    // The same request sent again (by its Idempotency-Key) finds the
    // upload further on: the bytes the server has are passed over, unless
    // a digest of the whole body is to be checked.
    let have = record.offset;
    let checkable = have == 0 || checksum.is_none();
    if (has_body || finish_empty) && takes_bytes && checkable {
        let append = AppendRequest {
            offset: have,
            checksum,
            content_length: content_length.map(|n| n.saturating_sub(have)),
            length_at_end: complete == Some(true) && record.length.is_none(),
            hold_at_length: v.holds_at_length() && complete != Some(true),
            caller,
            ..AppendRequest::default()
        };
        match state
            .uploads
            .append(
                &record.id,
                append,
                skip_bytes(body_stream(req.into_body()), have),
            )
            .await
        {
            Ok(updated) => record = updated,
            Err(e) => {
                // The upload exists whatever happened to its first bytes;
                // the client resumes at the offset this answer gives.
                if let Ok(current) = state.uploads.get(&record.id).await {
                    record = current;
                }
                failure = Some(e);
            }
        }
    }
    if failure.is_none() {
        if let Err(e) = super::resource::verify_repr_digest(state, &record).await {
            failure = Some(e);
        }
    }
    if failure.is_none() && complete == Some(true) && !record.is_complete() {
        failure = Some(Error::new(
            ErrorCode::LengthAlreadySet,
            format!(
                "The request said it completes the upload, but it ends at byte {} of {}.",
                record.offset,
                record.length.unwrap_or(0)
            ),
        ));
    }
    let mut resp = match failure {
        Some(e) => problem(
            v,
            e,
            Standing {
                offset: Some(record.offset),
                ..Standing::default()
            },
        ),
        None => StatusCode::CREATED.into_response(),
    };
    v.describe(state, &mut resp, &record);
    set(&mut resp, "location", location);
    Ok(resp)
}

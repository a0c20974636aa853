//! The OpenAPI document and Swagger UI over it. They are served by routes of ours rather than by
//! utoipa-swagger-ui's own service, whose routes take GET only: like every other path, these
//! answer HEAD and refuse other methods with 405 and an `Allow` header.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa_swagger_ui::Config;

use crate::openapi::{openapi, OPENAPI_PATH};
use crate::problem::ApiError;

/// What the documentation routes serve: the document, and Swagger UI's configuration, which
/// points it at the document.
pub(crate) struct Documentation {
    document: OpenApiDocument,
    swagger_ui: Arc<Config<'static>>,
}

impl Documentation {
    pub(crate) fn new() -> Self {
        Self {
            document: openapi(),
            swagger_ui: Arc::new(Config::from(OPENAPI_PATH)),
        }
    }
}

/// `GET /api-docs/openapi.json`.
pub(crate) async fn openapi_document(docs: web::Data<Documentation>) -> HttpResponse {
    HttpResponse::Ok().json(&docs.document)
}

/// `GET /docs/{file}`: a file of Swagger UI; its page when `file` is empty.
pub(crate) async fn swagger_ui(
    req: HttpRequest,
    docs: web::Data<Documentation>,
) -> Result<HttpResponse, ApiError> {
    let file = req.match_info().query("file");
    match utoipa_swagger_ui::serve(file, Arc::clone(&docs.swagger_ui)) {
        Ok(Some(file)) => Ok(HttpResponse::Ok()
            .content_type(file.content_type)
            .body(file.bytes.into_owned())),
        Ok(None) => Ok(crate::middleware::not_found(req).await),
        // Only writing the configuration into Swagger UI's initializer can fail.
        Err(error) => Err(ApiError::Internal(error.to_string().into())),
    }
}

/// `GET /docs`: Swagger UI lives at `/docs/`, whose relative links need the slash.
pub(crate) async fn redirect() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

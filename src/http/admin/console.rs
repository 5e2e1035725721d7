//! The console's assets, embedded in the binary at build time from `frontend/dist`, so the
//! gateway needs neither Node.js nor the internet to serve it.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use rust_embed::RustEmbed;

use crate::error::AppError;

#[derive(RustEmbed)]
#[folder = "frontend/dist/"]
struct Assets;

/// Mounts `/admin/` and `/admin/assets/*`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(redirect_to_slash))
        .route("/", web::get().to(index))
        .route("/assets/{path:.*}", web::get().to(asset));
}

async fn redirect_to_slash() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/admin/"))
        .finish()
}

async fn index() -> Result<HttpResponse, AppError> {
    serve("index.html", "no-cache")
}

async fn asset(path: web::Path<String>) -> Result<HttpResponse, AppError> {
    serve(&format!("assets/{}", path.into_inner()), "no-cache")
}

fn serve(path: &str, cache: &'static str) -> Result<HttpResponse, AppError> {
    let file = Assets::get(path).ok_or_else(|| AppError::not_found(format!("no asset {path}")))?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime.as_ref()))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(file.data.into_owned()))
}

//! Thumbnails of images, decoded and scaled by the browser off the main
//! thread (`createImageBitmap` with a resize), so a large photo never
//! freezes the page.
//!
//! What this module must not know: rows, settings or uploads.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    CanvasRenderingContext2d, File, HtmlCanvasElement, ImageBitmap, ImageBitmapOptions,
    ResizeQuality,
};

/// A data URL of a thumbnail `px` CSS pixels wide, for image files.
pub async fn thumbnail(file: &File, px: u32) -> Option<String> {
    if !file.type_().starts_with("image/") {
        return None;
    }
    let window = web_sys::window()?;
    let scale = window.device_pixel_ratio().clamp(1.0, 3.0);
    let width = ((px as f64) * scale).round() as u32;
    let options = ImageBitmapOptions::new();
    options.set_resize_width(width);
    options.set_resize_quality(ResizeQuality::Medium);
    let promise = window
        .create_image_bitmap_with_blob_and_image_bitmap_options(file, &options)
        .ok()?;
    let bitmap: ImageBitmap = JsFuture::from(promise).await.ok()?.dyn_into().ok()?;
    let document = window.document()?;
    let canvas: HtmlCanvasElement = document.create_element("canvas").ok()?.dyn_into().ok()?;
    canvas.set_width(bitmap.width());
    canvas.set_height(bitmap.height());
    let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    ctx.draw_image_with_image_bitmap(&bitmap, 0.0, 0.0).ok()?;
    bitmap.close();
    canvas.to_data_url_with_type("image/png").ok()
}

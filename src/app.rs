//! The HTML shell and the application's routes and pages.
//!
//! What it must not know: how requests are served (`http` mounts it) or
//! what a page does in the browser (`ui`, `client`).

use crate::ui::UploadPage;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    SsrMode, StaticSegment,
};

/// The document around the app: rendered on the server, with the scripts
/// that load and hydrate the WebAssembly bundle.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="description" content="Ferry: resumable uploads of large files"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: stylesheet, title and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/ferry.css"/>
        <Title text="Ferry"/>
        <Router>
            <header class="masthead">
                <a class="brand" href="/">"Ferry"</a>
                <span class="tagline">"Large files, resumable, verified."</span>
            </header>
            <main>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=UploadPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// Shown for any path that is not a page.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <section class="card">
            <h1>"Not found"</h1>
            <p>"There is nothing at this address. " <a href="/">"Back to uploads"</a></p>
        </section>
    }
}

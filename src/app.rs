//! The HTML shell and the application's routes and pages.

use crate::api::describe_server;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
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
                    <Route path=StaticSegment("") view=UploadPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// The upload page. Before WebAssembly loads (or with JavaScript off) it is
/// a plain form that posts the chosen files; once hydrated, the page takes
/// over the uploads itself.
#[component]
fn UploadPage() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Send files"</h1>
            <form
                id="upload-form"
                method="post"
                action="/upload/form"
                enctype="multipart/form-data"
            >
                <label class="picker" for="file-input">
                    <span class="picker-title">"Choose files"</span>
                    <span class="picker-hint">
                        "Any number, any size. Interrupted uploads resume where they stopped."
                    </span>
                </label>
                <input id="file-input" type="file" name="files" multiple=true/>
                <button type="submit">"Upload"</button>
            </form>
            <ServerStatus/>
        </section>
    }
}

/// A line that says whether the page can reach the server, filled in by a
/// server function once the page is interactive.
#[component]
fn ServerStatus() -> impl IntoView {
    let status = RwSignal::new(None::<Result<String, String>>);
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            let answer = describe_server()
                .await
                .map(|info| info.version)
                .map_err(|e| e.to_string());
            status.set(Some(answer));
        });
    });
    view! {
        <p class="server-status" data-testid="server-status" role="status" aria-live="polite">
            {move || match status.get() {
                None => String::new(),
                Some(Ok(version)) => format!("Connected to Ferry {version}"),
                Some(Err(err)) => format!("The server cannot be reached: {err}"),
            }}
        </p>
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

//! The server line: whether the page can reach the server, and its
//! version, asked through a server function once the page is interactive.
//!
//! What this module must not know: anything else about the server.

use crate::page::i18n::{t, Msg};
use crate::page::state::Uploads;
use leptos::prelude::*;

/// A line that says whether the page can reach the server, filled in by a
/// server function once the page is interactive.
#[component]
pub fn ServerStatus() -> impl IntoView {
    let lang = expect_context::<Uploads>().lang;
    let status = RwSignal::new(None::<Result<String, String>>);
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            let answer = crate::api::describe_server()
                .await
                .map(|info| info.version)
                .map_err(|e| e.to_string());
            status.set(Some(answer));
        });
    });
    view! {
        <p class="server-status" data-testid="server-status">
            {move || match status.get() {
                None => String::new(),
                Some(Ok(version)) => format!("{} {version}", t(lang.get(), Msg::Connected)),
                Some(Err(err)) => format!("{} {err}", t(lang.get(), Msg::Unreachable)),
            }}
        </p>
    }
}

//! The two plain pages the server answers outside the app: the sign-in form
//! and the answer to a failed form upload. Leptos views rendered once to
//! HTML; nothing on them runs in the browser.

use leptos::prelude::*;

/// The sign-in page's own small style: it loads nothing else.
const SIGNIN_STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;background:#f5f6f8;color:#1d2330;display:grid;place-items:center;min-height:100vh;margin:0}\
form{background:#fff;border:1px solid #dde1e8;border-radius:12px;padding:1.5rem;display:grid;gap:.75rem;width:min(22rem,90vw)}\
input,button{font:inherit;padding:.5rem;border-radius:8px;border:1px solid #dde1e8}button{background:#2457d6;color:#fff;border:0}\
.error{color:#b42318;margin:0}";

/// A whole document around a body.
fn document(title: &str, style: Option<&'static str>, body: impl IntoView + 'static) -> String {
    let title = title.to_string();
    let page = view! {
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{title}</title>
                {style.map(|css| view! { <style>{css}</style> })}
            </head>
            <body>{body}</body>
        </html>
    };
    format!("<!DOCTYPE html>{}", page.to_html())
}

/// The sign-in form; `error` says why the last attempt failed.
pub fn signin(error: Option<&str>) -> String {
    let error = error.map(str::to_string);
    document(
        "Sign in · Ferry",
        Some(SIGNIN_STYLE),
        view! {
            <form method="post" action="/signin">
                <h1>"Ferry"</h1>
                {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <label for="token">"Access token"</label>
                <input id="token" name="token" type="password" autocomplete="current-password" required=true autofocus=true/>
                <button type="submit">"Sign in"</button>
            </form>
        },
    )
}

/// The answer to a form upload that failed: the error's code (for scripts)
/// and message (for people), and the way back.
pub fn upload_failed(code: &str, message: &str) -> String {
    let (code, message) = (code.to_string(), message.to_string());
    document(
        "Upload failed · Ferry",
        None,
        view! {
            <h1>"Upload failed"</h1>
            <p data-error=code>{message}</p>
            <p><a href="/">"Back to Ferry"</a></p>
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let page = upload_failed("invalid_metadata", "<script>alert(1)</script> & more");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("Upload failed"));
        assert!(page.contains(r#"data-error="invalid_metadata""#));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        let page = signin(Some("That token is not right."));
        assert!(page.contains("That token is not right."));
        assert!(page.contains(r#"action="/signin""#));
        assert!(!signin(None).contains("role=\"alert\""));
    }
}

//! Where the page's requests go, and whose they are. On Ferry's own page
//! everything is same-origin and the browser's session cookie says who is
//! asking; embedded in another site's page (`crate::client::embed`), the
//! requests go to the Ferry server the widget came from, with the
//! browser's credentials (its session cookie, where the browser sends it)
//! and, when the host page gave one, a bearer token.
//!
//! `FerryClient` sends the server functions that way; the client's own
//! requests (`client::xhr`, `client::ws`, `client::live`) and the
//! download links ask `url` and `get`.
//!
//! What this module must not know: what the requests are for.

use std::cell::RefCell;

/// The Ferry server a page embedding the widget talks to.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Remote {
    /// The server's origin (`https://ferry.example`), without a trailing
    /// slash; empty on Ferry's own page, where paths are the page's.
    pub base: String,
    /// A bearer token naming the owner, given by the host page.
    pub token: Option<String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "****"))
            .finish()
    }
}

impl Remote {
    /// Whether requests leave the page's origin.
    pub fn is_remote(&self) -> bool {
        !self.base.is_empty()
    }

    /// The `Authorization` header's value for a request to `url`: with a
    /// token, and only for the server the token is for.
    pub fn authorization(&self, url: &str) -> Option<String> {
        let ours = self.is_remote()
            && url
                .strip_prefix(self.base.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        self.token
            .as_ref()
            .filter(|_| ours)
            .map(|t| format!("Bearer {t}"))
    }

    /// `path` (`/files/…`) on the server; absolute URLs are left alone.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') && !path.starts_with("//") {
            format!("{}{path}", self.base)
        } else {
            path.to_string()
        }
    }
}

// A page is one thread: this is the page's server, set once by the first
// widget mounted on it. The server renders Ferry's own page, always
// same-origin, and never sets it.
thread_local! {
    static REMOTE: RefCell<Remote> = RefCell::new(Remote::default());
}

/// Points every request of this page at `remote`. The first call decides:
/// a page talks to one Ferry server, as one owner; a second, different
/// one is refused with the server it already talks to.
pub fn set(remote: Remote) -> Result<(), Remote> {
    REMOTE.with(|r| {
        let mut current = r.borrow_mut();
        if current.is_remote() && *current != remote {
            return Err(current.clone());
        }
        *current = remote;
        Ok(())
    })
}

/// The server this page talks to.
pub fn get() -> Remote {
    REMOTE.with(|r| r.borrow().clone())
}

/// `path` on the server this page talks to (unchanged on Ferry's own page).
pub fn url(path: &str) -> String {
    REMOTE.with(|r| r.borrow().url(path))
}

/// The server functions' client: the browser's `fetch`, sent to the
/// remote server with credentials and the token when the page embeds
/// Ferry, exactly as before on Ferry's own page.
pub struct FerryClient;

mod client {
    use super::FerryClient;
    use futures::{Sink, Stream};
    use leptos::server_fn::client::browser::BrowserClient;
    use leptos::server_fn::client::Client;
    use leptos::server_fn::error::FromServerFnError;
    use leptos::server_fn::request::browser::BrowserRequest;
    use leptos::server_fn::response::browser::BrowserResponse;
    use leptos::server_fn::Bytes;
    use std::future::Future;

    impl<E, I, O> Client<E, I, O> for FerryClient
    where
        E: FromServerFnError,
        I: FromServerFnError,
        O: FromServerFnError,
    {
        type Request = BrowserRequest;
        type Response = BrowserResponse;

        fn send(
            mut req: BrowserRequest,
        ) -> impl Future<Output = Result<BrowserResponse, E>> + Send {
            #[cfg(feature = "hydrate")]
            aim(&mut req);
            #[cfg(not(feature = "hydrate"))]
            let _ = &mut req;
            <BrowserClient as Client<E, I, O>>::send(req)
        }

        #[allow(clippy::type_complexity)]
        fn open_websocket(
            path: &str,
        ) -> impl Future<
            Output = Result<
                (
                    impl Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
                    impl Sink<Bytes> + Send + 'static,
                ),
                E,
            >,
        > + Send {
            <BrowserClient as Client<E, I, O>>::open_websocket(path)
        }

        fn spawn(future: impl Future<Output = ()> + Send + 'static) {
            <BrowserClient as Client<E, I, O>>::spawn(future)
        }
    }

    /// Sends the request with the page's credentials (cross-origin fetches
    /// leave cookies behind unless asked) and the host page's token. The
    /// URL is already the server's: `embed` set it as the server
    /// functions' root.
    #[cfg(feature = "hydrate")]
    fn aim(req: &mut BrowserRequest) {
        use leptos::server_fn::request::browser::Request;
        let remote = super::get();
        if !remote.is_remote() {
            return;
        }
        let Ok(blank) = web_sys::Request::new_with_str("about:blank") else {
            return;
        };
        let original: web_sys::Request = std::mem::replace(&mut **req, Request::from(blank)).into();
        let init = web_sys::RequestInit::new();
        init.set_credentials(web_sys::RequestCredentials::Include);
        let aimed = match web_sys::Request::new_with_request_and_init(&original, &init) {
            Ok(aimed) => aimed,
            Err(_) => original,
        };
        if let Some(value) = remote.authorization(&aimed.url()) {
            // A fetch Request's headers take any header but the forbidden
            // ones; Authorization is not one of them.
            let _ = aimed.headers().set("authorization", &value);
        }
        **req = Request::from(aimed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_to_the_remote_server() {
        let own = Remote::default();
        assert_eq!(own.url("/files/abc"), "/files/abc");
        let remote = Remote {
            base: "https://ferry.example".into(),
            token: Some("t0k".into()),
        };
        assert_eq!(remote.url("/files/abc"), "https://ferry.example/files/abc");
        assert_eq!(remote.url("https://x.example/y"), "https://x.example/y");
        assert_eq!(remote.url("//x.example/y"), "//x.example/y");
        let auth = |url: &str| remote.authorization(url);
        assert_eq!(
            auth("https://ferry.example/files/a").as_deref(),
            Some("Bearer t0k")
        );
        for elsewhere in [
            "https://ferry.example.evil/files/a",
            "https://ferry.examplex/",
            "https://other.example/files/a",
            "/files/a",
        ] {
            assert_eq!(auth(elsewhere), None, "{elsewhere}");
        }
        assert!(!format!("{remote:?}").contains("t0k"), "never in a log");
    }

    #[test]
    fn one_server_per_page() {
        let a = Remote {
            base: "https://a.example".into(),
            token: None,
        };
        let b = Remote {
            base: "https://b.example".into(),
            token: None,
        };
        assert_eq!(set(a.clone()), Ok(()));
        assert_eq!(set(a.clone()), Ok(()), "the same server again is fine");
        assert_eq!(set(b), Err(a.clone()));
        assert_eq!(get(), a);
        assert_eq!(url("/x"), "https://a.example/x");
    }
}

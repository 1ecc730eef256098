//! Hooks over HTTP: a POST of the hook's JSON to `--hooks-url`, signed.
//!
//! Headers: `Ferry-Hook` (the point), `Ferry-Delivery` (post-hooks: the
//! stable delivery ID), and `Ferry-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 over "<t>.<body>">` with `--hooks-secret` (receivers check
//! it and refuse old `t`, so a recorded call cannot be replayed later).
//!
//! Answers: a 2xx is read as Ferry's hook answer (empty allows; for a
//! post-hook any 2xx will do); a 4xx refuses with that status and the
//! body's `message` (or its text, and then a refused finished upload is
//! kept, never removed); 404, 405, 408 and 429 (a wrong URL, a busy
//! gateway), 3xx, 5xx, a timeout or a broken connection mean the hook
//! could not be asked.

use crate::core::hooks::{Answer, HookPoint, HookTransport, Then, MAX_ANSWER};
use crate::protocol::hooks::{DELIVERY_HEADER, HOOK_HEADER, SIGNATURE_HEADER};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub struct HttpHooks {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
}

impl HttpHooks {
    pub fn new(url: String, secret: Option<String>, timeout: Duration) -> Result<Self, String> {
        crate::store::tls::install_crypto();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot make the hooks' HTTP client: {e}"))?;
        Ok(HttpHooks {
            client,
            url,
            secret,
        })
    }
}

/// The `Ferry-Signature` value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("t={t},v1={}", crate::core::hash::hex(&digest))
}

#[async_trait]
impl HookTransport for HttpHooks {
    async fn call(
        &self,
        point: HookPoint,
        delivery: Option<&str>,
        body: &str,
    ) -> Result<Answer, String> {
        let mut request = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(HOOK_HEADER, point.as_str());
        if let Some(id) = delivery {
            request = request.header(DELIVERY_HEADER, id);
        }
        if let Some(secret) = &self.secret {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            request = request.header(SIGNATURE_HEADER, signature(secret, t, body));
        }
        let mut response = request
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        let mut text = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            let room = MAX_ANSWER.saturating_sub(text.len());
            text.extend_from_slice(&chunk[..room.min(chunk.len())]);
            if text.len() >= MAX_ANSWER {
                break;
            }
        }
        let text = String::from_utf8_lossy(&text);
        match status.as_u16() {
            // A post-hook's answer only says it arrived ("OK" will do).
            200..=299 if delivery.is_some() => Ok(Answer::default()),
            200..=299 => Answer::from_json(&text),
            // What a wrong URL or a busy gateway answers: not a decision.
            code @ (404 | 405 | 408 | 429) => Err(format!(
                "the hook answered HTTP {code} (is --hooks-url right?)"
            )),
            code @ 400..=499 => Ok(match Answer::from_json(&text) {
                Ok(answer) if answer.message.is_some() || answer.allow.is_some() => Answer {
                    allow: Some(false),
                    status: Some(code),
                    ..answer
                },
                // A refusal in plain text keeps a finished upload: only
                // the hook's own JSON removes one.
                _ => Answer {
                    then: Some(Then::Keep),
                    ..Answer::refusal(code, text.trim().chars().take(1000).collect())
                },
            }),
            code => Err(format!("the hook answered HTTP {code}")),
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the hook took too long".to_string()
    } else if e.is_connect() {
        format!("cannot connect to the hook: {e}")
    } else {
        format!("calling the hook: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_time_and_body() {
        let a = signature("s3cret", 1700000000, "{}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1700000001, "{}"));
        assert_ne!(a, signature("s3cret", 1700000000, "{ }"));
        assert_ne!(a, signature("other", 1700000000, "{}"));
    }
}

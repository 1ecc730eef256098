//! Embed tokens: what a host page gives Ferry's embedded uploader so that
//! each of its users is an owner of their own, without the access token
//! (which also opens `/admin` and must never reach a browser). The host
//! page's back end, which knows `--embed-secret`, mints one per person:
//!
//! ```text
//! fe1.<owner>.<expires>.<mac>
//!   owner    1 to 64 of A-Z a-z 0-9 _ - (the host's name for the person)
//!   expires  Unix time in seconds
//!   mac      hex HMAC-SHA256(secret, "ferry-embed-token:<owner>.<expires>")
//! ```
//!
//! A valid, unexpired token names the owner `<owner>` (whatever token
//! named it, so a fresh token tomorrow sees today's uploads) and stands for
//! the access token on every route but `/admin`.
//!
//! What this module must not know: requests, headers and sessions
//! (`session` reads the bearer token and asks `verify`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How every embed token starts.
pub const PREFIX: &str = "fe1.";

/// Why a token that looks like an embed token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    Forged,
    Expired,
}

fn mac(secret: &str, owner: &str, expires: u64) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(format!("ferry-embed-token:{owner}.{expires}").as_bytes());
    m
}

fn valid_owner(owner: &str) -> bool {
    (1..=64).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A token for `owner` that expires at `expires` (Unix seconds); `None`
/// for an owner name outside the rule above.
pub fn mint(secret: &str, owner: &str, expires: u64) -> Option<String> {
    valid_owner(owner).then(|| {
        let mac = crate::core::hash::hex(&mac(secret, owner, expires).finalize().into_bytes());
        format!("{PREFIX}{owner}.{expires}.{mac}")
    })
}

/// The owner a token names, if it is valid and unexpired at `now` (Unix
/// seconds).
pub fn verify(secret: &str, token: &str, now: u64) -> Result<String, Refused> {
    let rest = token.strip_prefix(PREFIX).ok_or(Refused::Malformed)?;
    let mut parts = rest.split('.');
    let (Some(owner), Some(expires), Some(given), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Malformed);
    };
    let expires: u64 = expires.parse().map_err(|_| Refused::Malformed)?;
    let given = (given.len() == 64)
        .then(|| crate::core::hash::unhex(given))
        .flatten()
        .ok_or(Refused::Malformed)?;
    if !valid_owner(owner) {
        return Err(Refused::Malformed);
    }
    // In constant time: how long it takes says nothing of a guess.
    if mac(secret, owner, expires).verify_slice(&given).is_err() {
        return Err(Refused::Forged);
    }
    if expires <= now {
        return Err(Refused::Expired);
    }
    Ok(owner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_until_they_expire() {
        let t = mint("s3cret", "alice_01", 2_000).unwrap();
        assert!(t.starts_with("fe1.alice_01.2000."));
        assert_eq!(verify("s3cret", &t, 1_999), Ok("alice_01".into()));
        assert_eq!(verify("s3cret", &t, 2_000), Err(Refused::Expired));
        assert_eq!(verify("other", &t, 1_000), Err(Refused::Forged));
    }

    #[test]
    fn tampered_and_malformed_tokens_are_refused() {
        let t = mint("k", "bob", 5_000).unwrap();
        let later = t.replace(".5000.", ".9000.");
        assert_eq!(
            verify("k", &later, 1),
            Err(Refused::Forged),
            "expiry is signed"
        );
        let other = t.replace("fe1.bob.", "fe1.eve.");
        assert_eq!(
            verify("k", &other, 1),
            Err(Refused::Forged),
            "owner is signed"
        );
        for bad in [
            "bob",
            "fe1.",
            "fe1.bob.5000",
            "fe1.bob.x.00",
            "fe1.b b.5000.00",
            &format!("{t}.extra"),
            &format!("fe1.{}.1.{}", "a".repeat(65), "0".repeat(64)),
        ] {
            assert_eq!(verify("k", bad, 1), Err(Refused::Malformed), "{bad}");
        }
        assert_eq!(mint("k", "no/slash", 1), None);
        assert_eq!(mint("k", "", 1), None);
    }
}

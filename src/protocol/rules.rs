//! What the server accepts, as it announces it to the page (`UploadRules`,
//! from the `upload_rules` server function) and as both halves check it:
//! the page before it sends a byte, the server on every route. The type
//! rule is written once, here, so the two can never disagree.
//!
//! A type rule is a list of entries: `.pdf` or `.tar.gz` (the file name's
//! ending, any case), `image/png` or `image/*` (the media type). A file is
//! accepted when any entry matches its name or its type; an empty list
//! accepts everything.

use serde::{Deserialize, Serialize};

/// The server's rules for uploads, for the page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRules {
    /// Largest file, in bytes.
    pub max_size: u64,
    /// Accepted types (see the module's doc); empty: any.
    pub allow_types: Vec<String>,
    /// Most files sent at once (one choice or drop, one form); `None`: any.
    pub max_files: Option<u32>,
    /// What is left of the owner's share, in bytes; `None`: no quota.
    pub room_left: Option<u64>,
    /// A second type rule a file must also meet: the host page's, when
    /// Ferry's uploader is embedded in it (`page::embed`). The server
    /// never sets it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_types: Vec<String>,
}

/// Why a file breaks the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    TooLarge,
    TypeNotAllowed,
    TooManyFiles,
    NoRoom,
}

/// Whether an entry is well formed: an ending (`.ext`) or a media type
/// (`type/subtype`, `type/*`).
pub fn valid_entry(entry: &str) -> bool {
    let e = entry.trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match e.split_once('/') {
        Some((kind, sub)) => token(kind) && (sub == "*" || token(sub)),
        None => e.len() > 1 && e.starts_with('.') && token(&e[1..]),
    }
}

/// Whether a file of this name and media type is accepted by `allow`.
pub fn type_allowed(allow: &[String], name: &str, mime: &str) -> bool {
    if allow.is_empty() {
        return true;
    }
    let name = name.to_ascii_lowercase();
    let mime = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    allow.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.starts_with('.') {
            return name.len() > entry.len() && name.ends_with(&entry);
        }
        match entry.split_once('/') {
            Some((kind, "*")) => mime
                .split_once('/')
                .is_some_and(|(k, sub)| k == kind && !sub.is_empty()),
            Some(_) => mime == entry,
            None => false,
        }
    })
}

impl UploadRules {
    /// The kinds of file accepted, for people: the host page's list, and
    /// the server's when both have one.
    pub fn accepted_kinds(&self) -> String {
        match (self.allow_types.is_empty(), self.also_types.is_empty()) {
            (_, true) => self.allow_types.join(", "),
            (true, false) => self.also_types.join(", "),
            (false, false) => format!(
                "{} ({})",
                self.also_types.join(", "),
                self.allow_types.join(", ")
            ),
        }
    }

    /// The picker's `accept`: the narrower list, or none.
    pub fn picker_accept(&self) -> Option<String> {
        let list = if self.also_types.is_empty() {
            &self.allow_types
        } else {
            &self.also_types
        };
        (!list.is_empty()).then(|| list.join(","))
    }

    /// What is wrong with one file, checked alone (size and type).
    pub fn check(&self, name: &str, size: u64, mime: &str) -> Option<Broken> {
        if size > self.max_size {
            return Some(Broken::TooLarge);
        }
        if !type_allowed(&self.allow_types, name, mime)
            || !type_allowed(&self.also_types, name, mime)
        {
            return Some(Broken::TypeNotAllowed);
        }
        None
    }

    /// The verdict on each of a batch's files, in order: the ones checked
    /// alone, then at most `max_files` of those left, then as many as fit
    /// in the room left.
    pub fn check_batch<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a str, u64, &'a str)>,
    ) -> Vec<Option<Broken>> {
        let mut accepted = 0u32;
        let mut room = self.room_left;
        files
            .into_iter()
            .map(|(name, size, mime)| {
                if let Some(broken) = self.check(name, size, mime) {
                    return Some(broken);
                }
                if self.max_files.is_some_and(|most| accepted >= most) {
                    return Some(Broken::TooManyFiles);
                }
                if let Some(left) = room {
                    if size > left {
                        return Some(Broken::NoRoom);
                    }
                    room = Some(left - size);
                }
                accepted += 1;
                None
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn types_match_by_ending_or_media_type() {
        let a = allow(&["image/*", ".PDF", ".tar.gz", "text/plain"]);
        assert!(type_allowed(&a, "cat.jpg", "image/jpeg"));
        assert!(type_allowed(&a, "report.pdf", ""));
        assert!(type_allowed(&a, "REPORT.Pdf", "application/octet-stream"));
        assert!(type_allowed(&a, "src.tar.gz", ""));
        assert!(type_allowed(&a, "notes", "text/plain; charset=utf-8"));
        assert!(!type_allowed(&a, "setup.exe", "application/x-msdownload"));
        assert!(!type_allowed(&a, "gz", ""), "a bare ending is not a name");
        assert!(
            !type_allowed(&a, ".pdf", ""),
            "an ending alone is not a name"
        );
        assert!(!type_allowed(&a, "x", "image/"), "no subtype");
        assert!(!type_allowed(&a, "x", "imagex/png"));
        assert!(type_allowed(&[], "anything", ""));
    }

    #[test]
    fn entries_are_checked() {
        for good in [
            "image/*",
            ".pdf",
            ".tar.gz",
            "application/vnd.ms-excel",
            "text/plain",
        ] {
            assert!(valid_entry(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "pdf",
            "*/*",
            "image/",
            "/png",
            "image/png/x",
            ". pdf",
            "a b/c",
        ] {
            assert!(!valid_entry(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_batch_is_cut_by_size_type_count_and_room() {
        let rules = UploadRules {
            max_size: 100,
            allow_types: allow(&[".txt"]),
            max_files: Some(2),
            room_left: Some(150),
            also_types: Vec::new(),
        };
        let got = rules.check_batch([
            ("a.txt", 10, ""),
            ("big.txt", 101, ""),
            ("c.exe", 1, ""),
            ("d.txt", 100, ""),
            ("e.txt", 1, ""),
        ]);
        use Broken::*;
        assert_eq!(
            got,
            [
                None,
                Some(TooLarge),
                Some(TypeNotAllowed),
                None,
                Some(TooManyFiles)
            ]
        );
        let rules = UploadRules {
            max_files: None,
            ..rules
        };
        let got = rules.check_batch([("a.txt", 100, ""), ("b.txt", 60, ""), ("c.txt", 50, "")]);
        assert_eq!(got, [None, Some(NoRoom), None], "what still fits goes");
    }
}

//! What a file is called once Ferry has it: names and types cleaned of
//! characters that disguise them, and made safe to show, list and put in a
//! `Content-Disposition`. Server policy, not wire format.

use crate::protocol::key;
use crate::protocol::metadata::Metadata;

/// Whether a character is an invisible formatting character that can
/// disguise a name: Unicode's format characters (the bidirectional
/// overrides that make `invoice\u{202e}fdp.exe` show as "invoiceexe.pdf",
/// zero-width spaces, the byte-order mark), except the zero-width joiner
/// and non-joiner, which Persian, Indic scripts and emoji need.
pub fn is_disguising(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format && !matches!(c, '\u{200c}' | '\u{200d}')
}

/// A file name made safe to show and to put in a `Content-Disposition`:
/// no control characters, no path separators, no disguising characters
/// (`is_disguising`), no leading dots, at most 255 characters; `download`
/// when nothing is left.
pub fn sanitize_filename(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !is_disguising(*c))
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            '\u{2028}' | '\u{2029}' => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let limited: String = trimmed.chars().take(255).collect();
    if limited.is_empty() {
        "download".to_string()
    } else {
        limited
    }
}

/// Removes disguising characters (`is_disguising`) from the values that
/// name or type the file, and control characters from its type, so they
/// are stored, echoed and listed clean. Other keys are the client's.
pub fn clean_names(metadata: &mut Metadata) {
    metadata.rewrite_names(|key, text| {
        if key == key::RELATIVE_PATH {
            let clean = clean_relative_path(text);
            return (clean != text).then_some(clean);
        }
        // A media type has no control characters either.
        let is_type = matches!(key, key::FILETYPE | key::TYPE);
        let unwanted = |c: char| is_disguising(c) || (is_type && c.is_control());
        text.chars()
            .any(unwanted)
            .then(|| text.chars().filter(|c| !unwanted(*c)).collect())
    });
}

/// A path inside a folder as it is kept and shown: `/`-separated parts,
/// each without disguising or control characters, `:` or `\\` (so no drive
/// letter or separator of another system), at most 255 characters, and
/// none empty, `.` or `..` (so it can never climb out of its folder).
/// Never longer than what it cleans (stored metadata stays within its
/// limit), and cleaning it again changes nothing.
pub fn clean_relative_path(path: &str) -> String {
    path.split(['/', '\\'])
        .map(|part| {
            let cleaned: String = part
                .chars()
                .filter(|c| !is_disguising(*c))
                .map(|c| match c {
                    ':' | '\u{2028}' | '\u{2029}' => '_',
                    c if c.is_control() => '_',
                    c => c,
                })
                .collect();
            let cut: String = cleaned.trim().chars().take(255).collect();
            cut.trim().to_string()
        })
        .filter(|part| !part.is_empty() && part != "." && part != "..")
        .collect::<Vec<_>>()
        .join("/")
}

/// A media type as the page lists it: no control or disguising characters,
/// at most 255 characters.
pub fn clean_type(mime: &str) -> String {
    mime.chars()
        .filter(|c| !c.is_control() && !is_disguising(*c))
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn relative_paths_stay_inside_their_folder() {
        assert_eq!(
            clean_relative_path("photos/2024/a.jpg"),
            "photos/2024/a.jpg"
        );
        assert_eq!(clean_relative_path("/../../etc/passwd"), "etc/passwd");
        assert_eq!(clean_relative_path("a\\..\\b/./c.txt"), "a/b/c.txt");
        assert_eq!(clean_relative_path("x/\u{202e}fdp.exe"), "x/fdp.exe");
        assert_eq!(clean_relative_path("../.."), "");
        assert_eq!(
            clean_relative_path("C:\\Windows\\x.dll"),
            "C_/Windows/x.dll"
        );
        assert_eq!(clean_relative_path(".git/config"), ".git/config");
        // Never longer than what it cleans, and stable.
        let hostile = format!("a{}", "/...".repeat(1023));
        let clean = clean_relative_path(&hostile);
        assert!(clean.len() <= hostile.len(), "{}", clean.len());
        assert_eq!(clean_relative_path(&clean), clean);
        let odd = format!("{} x/\u{200b}/y", "é".repeat(300));
        let once = clean_relative_path(&odd);
        assert_eq!(clean_relative_path(&once), once);
        let mut m = Metadata::from_pairs([("relativePath", "../up/./x.txt")]);
        clean_names(&mut m);
        assert_eq!(m.get_str("relativePath"), Some("up/x.txt"));
    }

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(sanitize_filename("a\r\nb\0.txt"), "a__b_.txt");
        assert_eq!(sanitize_filename("..."), "download");
        assert_eq!(sanitize_filename("照片.png"), "照片.png");
        assert_eq!(sanitize_filename(&"é".repeat(1000)).chars().count(), 255);
        assert_eq!(
            sanitize_filename("invoice\u{202e}fdp.exe"),
            "invoicefdp.exe"
        );
        let mut m = Metadata::parse(&format!(
            "filename {},note {}",
            STANDARD.encode("invoice\u{202e}fdp.exe"),
            STANDARD.encode("a\u{202e}b")
        ))
        .unwrap();
        clean_names(&mut m);
        assert_eq!(m.filename(), Some("invoicefdp.exe"));
        assert_eq!(
            m.get_str("note"),
            Some("a\u{202e}b"),
            "other keys are the client's"
        );
        assert_eq!(
            sanitize_filename("ab\u{200c}c\u{200d}d"),
            "ab\u{200c}c\u{200d}d"
        );
        assert_eq!(
            sanitize_filename("a\u{200b}b\u{2066}c\u{feff}d\u{061c}e\u{2028}f"),
            "abcde_f"
        );
    }
}

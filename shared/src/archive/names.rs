//! Entry names: decoding (UTF-8 or IBM code page 437, as the ZIP format says) and the rules that
//! make a name safe to extract on Linux and on Windows, where BCDI servers also run. The check
//! and the hosting agent's extraction both go through [`normalise`], so they cannot disagree.

use std::fmt;

/// Longer names are refused: Windows tools choke far below this, no base needs more.
pub const MAX_NAME_BYTES: usize = 1024;
/// The longest file name Linux and NTFS accept, in bytes of UTF-8.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Deeper paths are refused: a base is a flat directory, perhaps inside one or two folders.
pub const MAX_DEPTH: usize = 64;

/// Characters Windows refuses in a file name (besides the separators and control characters).
const WINDOWS_FORBIDDEN: &[char] = &['<', '>', ':', '"', '|', '?', '*'];

/// A relative path made only of safe components, joined by `/`. Built only by [`normalise`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SafePath(String);

impl SafePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The path without its last component: `""` for a top-level entry.
    pub fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(parent, _)| parent)
    }

    /// Every proper ancestor, shortest first: `a`, `a/b` for `a/b/c`.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices('/')
            .map(move |(index, _)| &self.0[..index])
    }

    /// The path relative to `prefix` (a directory given without trailing slash, `""` for the
    /// root), if it lies under it, compared case-insensitively like the duplicate rule.
    pub fn strip_dir(&self, prefix: &str) -> Option<&str> {
        if prefix.is_empty() {
            return Some(&self.0);
        }
        let head = self.0.get(..prefix.len())?;
        let rest = self.0.get(prefix.len()..)?;
        let rest = rest.strip_prefix('/')?;
        (head.to_lowercase() == prefix.to_lowercase() && !rest.is_empty()).then_some(rest)
    }

    /// The key under which two names are the same file: BCDI may run on Windows, whose file
    /// systems ignore case.
    pub fn key(&self) -> String {
        fold(&self.0)
    }
}

impl fmt::Debug for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Case folding for comparisons. Known shortcoming: no Unicode normalisation (NFC vs NFD), so
/// `é` precomposed and decomposed are two names; that needs tables this crate does not carry.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// A name as stored in the archive, decoded: UTF-8 when the entry says so (general-purpose
/// flag bit 11), else code page 437, the format's historical default.
pub fn decode(raw: &[u8], utf8: bool) -> Result<String, &'static str> {
    if utf8 {
        return std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| "is not valid UTF-8 although the entry says it is");
    }
    Ok(raw
        .iter()
        .map(|&byte| match byte {
            0..=0x7f => char::from(byte),
            _ => CP437_HIGH[usize::from(byte - 0x80)],
        })
        .collect())
}

/// What a name stands for once made safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalised {
    File(SafePath),
    Dir(SafePath),
    /// `./` and the like: a directory entry for the archive's root, which extraction skips.
    Root,
}

/// Makes `name` a safe relative path or says, in English, why it is not one.
///
/// Backslashes count as separators (Windows treats them so: `..\x` must not slip through as a
/// file name on Linux and climb out on Windows); `.` and empty components are dropped; a
/// trailing separator marks a directory.
pub fn normalise(name: &str) -> Result<Normalised, String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    if name.is_empty() {
        return Err("has no name".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err("contains control characters".to_owned());
    }
    let name = name.replace('\\', "/");
    if name.starts_with('/') {
        return Err("is an absolute path".to_owned());
    }
    let mut chars = name.chars();
    if let (Some(first), Some(':')) = (chars.next(), chars.next()) {
        if first.is_ascii_alphabetic() {
            return Err("starts with a drive letter".to_owned());
        }
    }

    let is_dir = name.ends_with('/');
    let mut components = Vec::new();
    for component in name.split('/') {
        if component.is_empty() || component == "." {
            continue;
        }
        check_component(component)?;
        components.push(component);
    }
    if components.len() > MAX_DEPTH {
        return Err(format!("is nested more than {MAX_DEPTH} folders deep"));
    }
    if components.is_empty() {
        return if is_dir {
            Ok(Normalised::Root)
        } else {
            Err("has no name".to_owned())
        };
    }
    let path = SafePath(components.join("/"));
    Ok(if is_dir {
        Normalised::Dir(path)
    } else {
        Normalised::File(path)
    })
}

/// Whether `component` can be one file name on both Linux and Windows.
pub fn check_component(component: &str) -> Result<(), String> {
    if component == ".." {
        return Err("climbs out of its folder with \"..\"".to_owned());
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(format!(
            "has a component longer than {MAX_COMPONENT_BYTES} bytes"
        ));
    }
    if let Some(bad) = component.chars().find(|c| WINDOWS_FORBIDDEN.contains(c)) {
        return Err(format!(
            "contains {bad:?}, which Windows does not allow in a name"
        ));
    }
    if component.ends_with(['.', ' ']) {
        // Windows drops them, so `NOTICES.DAT.` would overwrite `NOTICES.DAT`.
        return Err(format!(
            "has a component ending with a dot or a space ({component:?}), which Windows drops"
        ));
    }
    if is_reserved_device(component) {
        return Err(format!(
            "uses {component:?}, a device name Windows reserves"
        ));
    }
    Ok(())
}

/// `CON`, `NUL`, `COM1`… with or without an extension, in any case.
fn is_reserved_device(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or(component).trim_end();
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let (Some(prefix), Some(digit)) = (upper.get(..3), upper.get(3..)) else {
                return false;
            };
            (prefix == "COM" || prefix == "LPT")
                && digit.len() == 1
                && digit.bytes().all(|byte| byte.is_ascii_digit())
                && digit != "0"
        }
    }
}

/// Code page 437, bytes 0x80 to 0xFF.
const CP437_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐', //
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧', //
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀', //
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩', //
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{a0}',
];

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> String {
        match normalise(name) {
            Ok(Normalised::File(path)) => path.0,
            other => panic!("{name:?} gave {other:?}"),
        }
    }

    #[test]
    fn ordinary_names_are_kept_with_dot_and_empty_components_dropped() {
        assert_eq!(file("data/NOTICES.DAT"), "data/NOTICES.DAT");
        assert_eq!(file("./data//NOTICES.DAT"), "data/NOTICES.DAT");
        assert_eq!(file("data\\NOTICES.DAT"), "data/NOTICES.DAT");
        assert_eq!(file("Données élèves/PRETS.DAT"), "Données élèves/PRETS.DAT");
        assert_eq!(
            normalise("data/"),
            Ok(Normalised::Dir(SafePath("data".into())))
        );
        assert_eq!(normalise("./"), Ok(Normalised::Root));
    }

    #[test]
    fn names_that_escape_or_that_windows_would_change_are_refused() {
        for bad in [
            "/etc/passwd",
            "\\\\server\\share\\x",
            "C:/Windows/x",
            "c:x",
            "../x",
            "data/../../x",
            "..\\..\\x",
            "data\\..\\..\\x",
            "a/b:c",
            "NOTICES.DAT.",
            "NOTICES.DAT ",
            "con",
            "data/NUL.txt",
            "lpt1",
            "a\u{0}b",
            "a\nb",
            "",
            "x?",
        ] {
            assert!(normalise(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(normalise(&"a/".repeat(65)).is_err());
        assert!(normalise(&"a".repeat(256)).is_err());
        assert!(normalise(&"a".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn names_like_device_names_but_longer_are_allowed() {
        for good in [
            "CONTACTS.DAT",
            "COM10",
            "LPT0",
            "console",
            "nullable.dat",
            "..a",
            "ÉÉ",
        ] {
            assert!(normalise(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn code_page_437_is_the_default_and_utf8_is_checked() {
        assert_eq!(decode(b"Donn\x82es", false).unwrap(), "Données");
        assert_eq!(decode("Données".as_bytes(), true).unwrap(), "Données");
        assert!(decode(b"Donn\x82es", true).is_err());
    }

    #[test]
    fn paths_know_their_parent_ancestors_and_key() {
        let path = SafePath("Data/Sub/NOTICES.DAT".into());
        assert_eq!(path.parent(), "Data/Sub");
        assert_eq!(path.file_name(), "NOTICES.DAT");
        assert_eq!(path.ancestors().collect::<Vec<_>>(), ["Data", "Data/Sub"]);
        assert_eq!(path.key(), "data/sub/notices.dat");
        assert_eq!(path.strip_dir("data"), Some("Sub/NOTICES.DAT"));
        assert_eq!(path.strip_dir(""), Some("Data/Sub/NOTICES.DAT"));
        assert_eq!(path.strip_dir("Dat"), None);
        assert_eq!(path.strip_dir("Data/Sub/NOTICES.DAT"), None);
    }
}

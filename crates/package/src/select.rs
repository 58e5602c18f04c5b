//! Which files of a package `sign` signs (`--files`, `--exclude`, `--executables`); the rest get
//! an empty entry in tag 276.
//!
//! Globs match the installed path (`/usr/bin/foo`) as a shell does: `*` and `?` stay within one
//! path component, `**` crosses components, `[a-z]`, `[!x]` (or `[^x]`) are classes.

/// What a file's first bytes say it is, recorded while its content streams by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContentKind {
    /// Starts with `\x7fELF`: a program, shared library or object.
    Elf,
    /// Starts with `#!`.
    Script,
    #[default]
    Other,
}

impl ContentKind {
    pub fn of(first: &[u8]) -> ContentKind {
        if first.starts_with(b"\x7fELF") {
            ContentKind::Elf
        } else if first.starts_with(b"#!") {
            ContentKind::Script
        } else {
            ContentKind::Other
        }
    }

    pub fn is_executable(self) -> bool {
        self != ContentKind::Other
    }
}

/// A shell glob over installed paths.
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
}

impl Glob {
    pub fn new(text: &str) -> Result<Glob, String> {
        let mut depth = false;
        for c in text.chars() {
            match c {
                '[' if !depth => depth = true,
                ']' if depth => depth = false,
                _ => {}
            }
        }
        if depth {
            return Err(format!("glob '{text}': unclosed '['"));
        }
        if text.is_empty() {
            return Err("empty glob".into());
        }
        Ok(Glob { text: text.into() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        glob_match(self.text.as_bytes(), path)
    }
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let mut rest = &p[2..];
            // `**/` also matches no directory at all.
            if rest.first() == Some(&b'/') && glob_match(&rest[1..], s) {
                return true;
            }
            while rest.first() == Some(&b'*') {
                rest = &rest[1..];
            }
            (0..=s.len()).any(|i| glob_match(rest, &s[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if glob_match(rest, &s[i..]) {
                    return true;
                }
                if s.get(i) == Some(&b'/') {
                    break;
                }
            }
            false
        }
        Some(b'?') => matches!(s.first(), Some(&c) if c != b'/') && glob_match(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            let Some(end) = p.iter().skip(2).position(|&b| b == b']').map(|i| i + 2) else {
                return c == b'[' && glob_match(&p[1..], &s[1..]);
            };
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some(b'!' | b'^'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            c != b'/' && hit != negate && glob_match(&p[end + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && glob_match(&p[1..], &s[1..]),
    }
}

/// The files to sign. With neither `files` nor `executables`, every file (less `exclude`);
/// otherwise the files matching a `files` glob and, with `executables`, the ELF files and
/// `#!` scripts — less those matching an `exclude` glob.
#[derive(Clone, Debug, Default)]
pub struct FileSelection {
    pub files: Vec<Glob>,
    pub exclude: Vec<Glob>,
    pub executables: bool,
}

impl FileSelection {
    /// Every file is signed.
    pub fn is_all(&self) -> bool {
        self.files.is_empty() && self.exclude.is_empty() && !self.executables
    }

    /// Whether the choice depends on content (so it is known only after streaming).
    pub fn needs_content(&self) -> bool {
        self.executables
    }

    /// Whether the file at `path` whose content starts as `kind` is signed.
    pub fn selects(&self, path: &[u8], kind: ContentKind) -> bool {
        if self.exclude.iter().any(|g| g.matches(path)) {
            return false;
        }
        if self.files.is_empty() && !self.executables {
            return true;
        }
        (self.executables && kind.is_executable()) || self.files.iter().any(|g| g.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s.as_bytes())
    }

    #[test]
    fn globs() {
        assert!(m("/usr/bin/*", "/usr/bin/foo"));
        assert!(!m("/usr/bin/*", "/usr/bin/sub/foo"));
        assert!(m("/usr/**", "/usr/bin/sub/foo"));
        assert!(m("/usr/**/foo", "/usr/foo"));
        assert!(m("/usr/**/foo", "/usr/a/b/foo"));
        assert!(m("**/*.so*", "/usr/lib64/libx.so.1"));
        assert!(m("/usr/lib/lib?.so", "/usr/lib/liba.so"));
        assert!(!m("/usr/lib/lib?.so", "/usr/lib/libab.so"));
        assert!(m("/etc/[a-c]*", "/etc/bar"));
        assert!(!m("/etc/[!a-c]*", "/etc/bar"));
        assert!(m("/etc/[!a-c]*", "/etc/zed"));
        assert!(!m("/usr/bin", "/usr/bin/x"));
        assert!(Glob::new("/a[b").is_err());
    }

    #[test]
    fn selection() {
        let g = |s: &str| Glob::new(s).unwrap();
        let all = FileSelection::default();
        assert!(all.is_all() && all.selects(b"/x", ContentKind::Other));
        let ex = FileSelection {
            executables: true,
            exclude: vec![g("/usr/libexec/*")],
            files: vec![g("/usr/share/a/*.conf")],
        };
        assert!(ex.selects(b"/usr/bin/a", ContentKind::Elf));
        assert!(ex.selects(b"/usr/bin/s", ContentKind::Script));
        assert!(!ex.selects(b"/usr/share/doc/x", ContentKind::Other));
        assert!(ex.selects(b"/usr/share/a/x.conf", ContentKind::Other));
        assert!(!ex.selects(b"/usr/libexec/a", ContentKind::Elf));
        assert_eq!(ContentKind::of(b"\x7fELF\x02"), ContentKind::Elf);
        assert_eq!(ContentKind::of(b"#!/bin/sh"), ContentKind::Script);
        assert_eq!(ContentKind::of(b"#"), ContentKind::Other);
    }
}

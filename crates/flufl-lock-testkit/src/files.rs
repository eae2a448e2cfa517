//! What a run left in a lock's directory.
//!
//! After every lock is released, a lock's directory must hold no lock file, no claim file,
//! no break marker and no private name: only what the test itself put there (a log, a
//! counter).

use std::io;
use std::path::Path;

/// The names of the files in `dir` other than those in `expected`, sorted.
///
/// # Errors
///
/// The error of reading `dir`.
pub fn leftovers(dir: &Path, expected: &[&str]) -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if !expected.contains(&name.as_str()) {
            v.push(name);
        }
    }
    v.sort();
    Ok(v)
}

/// The names of the files in `dir`, sorted. Panics if `dir` cannot be read.
#[track_caller]
pub fn files_in(dir: &Path) -> Vec<String> {
    leftovers(dir, &[]).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
}

/// Fails unless `dir` holds exactly the files named in `expected` (in any order): nothing
/// left behind, nothing expected missing.
#[track_caller]
pub fn assert_no_leftovers(dir: &Path, expected: &[&str]) {
    let found = files_in(dir);
    let mut want: Vec<&str> = expected.to_vec();
    want.sort_unstable();
    assert!(
        found == want,
        "{}: files left behind {:?} (found {found:?}, expected exactly {want:?})",
        dir.display(),
        found
            .iter()
            .filter(|f| !expected.contains(&f.as_str()))
            .collect::<Vec<_>>()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("flufl-lock-testkit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Listings are sorted; expected names are left out; the assertion accepts exactly the
    /// expected set.
    #[test]
    fn listing_and_assertion() {
        let d = scratch("files");
        assert_eq!(files_in(&d), Vec::<String>::new());
        assert_no_leftovers(&d, &[]);
        for f in ["log", "counter", "x.lck|host|1|2"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        assert_eq!(files_in(&d), ["counter", "log", "x.lck|host|1|2"]);
        assert_eq!(
            leftovers(&d, &["log", "counter"]).unwrap(),
            ["x.lck|host|1|2"]
        );
        std::fs::remove_file(d.join("x.lck|host|1|2")).unwrap();
        assert_no_leftovers(&d, &["log", "counter"]);
        std::fs::remove_dir_all(&d).unwrap();
        assert!(leftovers(&d, &[]).is_err());
    }

    /// A file left behind fails the assertion, and so does an expected file that is missing.
    #[test]
    fn assertion_fails() {
        let d = scratch("fail");
        std::fs::write(d.join("claim"), "").unwrap();
        let extra = std::panic::catch_unwind(|| assert_no_leftovers(&d, &[]));
        let missing = std::panic::catch_unwind(|| assert_no_leftovers(&d, &["claim", "log"]));
        std::fs::remove_dir_all(&d).unwrap();
        assert!(extra.is_err() && missing.is_err());
    }
}

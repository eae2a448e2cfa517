//! The overlap checker over an enter/exit log.
//!
//! The contention tests have each process log `E <id> <i>` when it enters its critical
//! section (after `lock()` returned) and `X <id> <i>` when it leaves (before `unlock()`),
//! appending to one shared file while it holds the lock. If the lock is exclusive, every
//! `E` is followed by its own `X` before any other record.

use std::collections::HashMap;

/// One completed critical section of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The process (or thread) that logged it.
    pub id: String,
    /// Its iteration number, counted per `id` from 0.
    pub iteration: usize,
    /// The 1-based line of its `E` record.
    pub line: usize,
}

/// Checks a log of `E <id> <i>` / `X <id> <i>` records: every enter is followed by the exit
/// of the same id and iteration before any other record (no overlapping critical sections),
/// the log does not end inside a section, and each id's iterations come in order 0, 1,
/// 2, ... with none skipped or repeated. Returns the sections in log order; `Err` says what
/// is wrong, and where.
pub fn check_sections(log: &str) -> Result<Vec<Section>, String> {
    let mut sections = Vec::new();
    let mut inside: Option<(&str, &str, usize)> = None;
    let mut next_iter: HashMap<&str, usize> = HashMap::new();
    for (n, line) in log.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.as_slice(), inside) {
            (["E", id, i], None) => {
                let want = next_iter.entry(id).or_default();
                if i.parse::<usize>().ok() != Some(*want) {
                    return Err(format!(
                        "line {}: {line:?}: {id} skipped or repeated an iteration (next was {want})",
                        n + 1
                    ));
                }
                *want += 1;
                inside = Some((id, i, n + 1));
            }
            (["X", id, i], Some((iid, ii, at))) if *id == iid && *i == ii => {
                inside = None;
                sections.push(Section {
                    id: id.to_string(),
                    iteration: next_iter[id] - 1,
                    line: at,
                });
            }
            _ => {
                return Err(format!(
                    "overlapping critical sections or a corrupt record at line {}: {line:?} \
                     while inside {:?}",
                    n + 1,
                    inside.map(|(id, i, _)| (id, i))
                ))
            }
        }
    }
    match inside {
        Some(_) => Err("the log ends inside a critical section".to_string()),
        None => Ok(sections),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A serial log gives its sections in order, with their lines.
    #[test]
    fn serial_log() {
        let s = check_sections("E py1 0\nX py1 0\nE rs2 0\nX rs2 0\nE py1 1\nX py1 1\n").unwrap();
        let got: Vec<(&str, usize, usize)> = s
            .iter()
            .map(|s| (s.id.as_str(), s.iteration, s.line))
            .collect();
        assert_eq!(got, [("py1", 0, 1), ("rs2", 0, 3), ("py1", 1, 5)]);
        assert_eq!(check_sections("").unwrap(), []);
    }

    /// The checker is not vacuous: it rejects an overlap, an exit without its enter, a
    /// skipped iteration, a repeated one, and a log that ends inside a section.
    #[test]
    fn rejects_bad_logs() {
        for bad in [
            "E py1 0\nE rs2 0\nX py1 0\nX rs2 0\n",
            "E py1 0\nX rs2 0\n",
            "E py1 0\nX py1 1\n",
            "E py1 0\nX py1 0\nE py1 2\nX py1 2\n",
            "E py1 0\nX py1 0\nE py1 0\nX py1 0\n",
            "E py1 0\n",
            "X py1 0\n",
            "garbage\n",
        ] {
            assert!(check_sections(bad).is_err(), "accepted {bad:?}");
        }
    }
}

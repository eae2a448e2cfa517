//! The checker: reads the shared log of a stress run and the final counter, and finds
//! overlapping critical sections, lost updates, records written after a kill, and how long
//! each killed holder's lock took to be taken again.
//!
//! Log records, one `write(2)` each, in the order the file received them (`O_APPEND`):
//!
//! | record | written by | when |
//! |---|---|---|
//! | `A <inst> <pid> <seq> <mono_ns>` | worker | `lock()` returned |
//! | `E <inst> <seq> <value>` | worker | entering: it read `value` from the counter |
//! | `X <inst> <seq> <value>` | worker | leaving: it wrote `value` to the counter |
//! | `R <inst> <seq> <mono_ns>` | worker | `unlock()` returned |
//! | `F <inst> <message>` | worker | an error (lost lock, timeout): the run fails |
//! | `S <inst> <mono_ns>` / `C <inst> <mono_ns>` | coordinator | a waiter stopped / continued |
//! | `K <inst> <pid> <mono_ns>` | coordinator | a holder, already stopped, is about to be SIGKILLed |
//!
//! `<inst>` is `<worker>.<generation>`: a respawned worker is a new instance. Because a
//! victim is stopped (state `T` in `/proc`) before its `K` is written, nothing it wrote can
//! follow its `K`; its open section ends there. Any enter while another section is open is
//! an overlap. The counter is checked section by section: each section must enter with the
//! value the previous one left (a killed section left its entry value or one more).

use std::collections::HashSet;

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `A`: acquired.
    Acquired {
        /// Instance.
        inst: String,
        /// Process id.
        pid: u32,
        /// Sequence number within the instance.
        seq: u64,
        /// `CLOCK_MONOTONIC` ns.
        t: u64,
    },
    /// `E`: entered the critical section, having read `value`.
    Enter {
        /// Instance.
        inst: String,
        /// Sequence number.
        seq: u64,
        /// Counter value read.
        value: u64,
    },
    /// `X`: left the critical section, having written `value`.
    Exit {
        /// Instance.
        inst: String,
        /// Sequence number.
        seq: u64,
        /// Counter value written.
        value: u64,
    },
    /// `R`: released.
    Released {
        /// Instance.
        inst: String,
    },
    /// `F`: the worker failed.
    Failed {
        /// Instance.
        inst: String,
        /// What happened.
        message: String,
    },
    /// `S` or `C`: a waiter was stopped or continued.
    Stop {
        /// Instance.
        inst: String,
    },
    /// `K`: a stopped holder is about to be killed.
    Kill {
        /// Instance.
        inst: String,
        /// `CLOCK_MONOTONIC` ns just before the SIGKILL.
        t: u64,
    },
}

impl Record {
    /// Parses one line; `None` if it is not a well-formed record.
    pub fn parse(line: &str) -> Option<Record> {
        let mut f = line.split(' ');
        let kind = f.next()?;
        let inst = f.next()?.to_string();
        let mut num = || f.next()?.parse::<u64>().ok();
        Some(match kind {
            "A" => Record::Acquired {
                inst,
                pid: u32::try_from(num()?).ok()?,
                seq: num()?,
                t: num()?,
            },
            "E" => Record::Enter {
                inst,
                seq: num()?,
                value: num()?,
            },
            "X" => Record::Exit {
                inst,
                seq: num()?,
                value: num()?,
            },
            "R" => Record::Released { inst },
            "S" | "C" => Record::Stop { inst },
            "K" => {
                let _pid = num()?;
                Record::Kill { inst, t: num()? }
            }
            "F" => {
                let message = line.splitn(3, ' ').nth(2).unwrap_or("").to_string();
                Record::Failed { inst, message }
            }
            _ => return None,
        })
    }
}

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// `A` records.
    pub acquisitions: u64,
    /// `R` records.
    pub releases: u64,
    /// Sections with both enter and exit.
    pub completed: u64,
    /// `K` records.
    pub kills: u64,
    /// Kills of a holder inside its critical section.
    pub kills_in_section: u64,
    /// Killed sections that had already written the counter.
    pub killed_after_write: u64,
    /// Enters while another live section was open.
    pub overlaps: Vec<String>,
    /// Sections that did not see the value the previous one left, and a final counter that
    /// does not match the log.
    pub lost_updates: Vec<String>,
    /// Malformed lines, exits without their enter, records after a kill.
    pub corrupt: Vec<String>,
    /// `F` records.
    pub failures: Vec<String>,
    /// For each kill, ns from the kill to the next acquisition by anyone.
    pub recoveries_ns: Vec<u64>,
    /// Kills never followed by an acquisition.
    pub unrecovered: u64,
    /// The longest time between two successive acquisitions, ns.
    pub max_gap_ns: u64,
}

#[derive(Debug, Clone, Copy)]
enum Left {
    /// The counter's start value.
    Value(u64),
    /// A killed section that read this value; it left it or one more.
    Killed(u64),
}

/// Checks `log` and the counter's final value.
pub fn check(log: &str, counter: u64) -> Findings {
    let mut r = Findings::default();
    let mut open: Option<(String, u64, u64, usize)> = None;
    let mut left = Left::Value(0);
    let mut dead: HashSet<String> = HashSet::new();
    let mut pending_kills: Vec<u64> = Vec::new();
    let mut last_acquired: Option<u64> = None;
    for (i, line) in log.lines().enumerate() {
        let n = i + 1;
        let Some(rec) = Record::parse(line) else {
            r.corrupt.push(format!("line {n}: malformed {line:?}"));
            continue;
        };
        let inst = match &rec {
            Record::Acquired { inst, .. }
            | Record::Enter { inst, .. }
            | Record::Exit { inst, .. }
            | Record::Released { inst }
            | Record::Failed { inst, .. }
            | Record::Stop { inst }
            | Record::Kill { inst, .. } => inst.clone(),
        };
        if dead.contains(&inst) {
            r.corrupt.push(format!(
                "line {n}: record of {inst} after it was killed: {line:?}"
            ));
        }
        match rec {
            Record::Acquired { t, .. } => {
                r.acquisitions += 1;
                for k in pending_kills.drain(..) {
                    r.recoveries_ns.push(t.saturating_sub(k));
                }
                if let Some(l) = last_acquired {
                    r.max_gap_ns = r.max_gap_ns.max(t.saturating_sub(l));
                }
                last_acquired = Some(t);
            }
            Record::Enter { inst, seq, value } => {
                if let Some((oi, os, _, ol)) = &open {
                    r.overlaps.push(format!(
                        "line {n}: {inst} #{seq} entered while {oi} #{os} (line {ol}) was inside"
                    ));
                }
                match left {
                    Left::Value(v) if value == v => {}
                    Left::Killed(v) if value == v => {}
                    Left::Killed(v) if value == v + 1 => r.killed_after_write += 1,
                    _ => r.lost_updates.push(format!(
                        "line {n}: {inst} #{seq} read {value}, but the previous section left {left:?}"
                    )),
                }
                open = Some((inst, seq, value, n));
            }
            Record::Exit { inst, seq, value } => match open.take() {
                Some((oi, os, ov, _)) if oi == inst && os == seq => {
                    if value != ov + 1 {
                        r.lost_updates.push(format!(
                            "line {n}: {inst} #{seq} read {ov} but wrote {value}"
                        ));
                    }
                    r.completed += 1;
                    left = Left::Value(value);
                }
                other => r.corrupt.push(format!(
                    "line {n}: {inst} #{seq} left a section it had not entered (open: {other:?})"
                )),
            },
            Record::Released { .. } => r.releases += 1,
            Record::Failed { inst, message } => r.failures.push(format!("{inst}: {message}")),
            Record::Stop { .. } => {}
            Record::Kill { inst, t } => {
                r.kills += 1;
                if open.as_ref().is_some_and(|o| o.0 == inst) {
                    let (_, _, v, _) = open.take().expect("checked");
                    r.kills_in_section += 1;
                    left = Left::Killed(v);
                }
                dead.insert(inst);
                pending_kills.push(t);
            }
        }
    }
    if let Some((oi, os, _, ol)) = open {
        r.corrupt
            .push(format!("the log ends inside {oi} #{os} (line {ol})"));
    }
    r.unrecovered = pending_kills.len() as u64;
    match left {
        Left::Value(v) if counter == v => {}
        Left::Killed(v) if counter == v => {}
        Left::Killed(v) if counter == v + 1 => r.killed_after_write += 1,
        _ => r.lost_updates.push(format!(
            "the counter ends at {counter}, but the last section left {left:?}"
        )),
    }
    if counter != r.completed + r.killed_after_write {
        r.lost_updates.push(format!(
            "the counter is {counter}, but {} sections completed and {} killed sections wrote it",
            r.completed, r.killed_after_write
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(log: &[&str], counter: u64) -> Findings {
        check(&log.join("\n"), counter)
    }

    /// Clean, serial sections: no findings, counts right.
    #[test]
    fn clean_log() {
        let f = run(
            &[
                "A 0.0 10 0 100",
                "E 0.0 0 0",
                "X 0.0 0 1",
                "R 0.0 0 150",
                "A 1.0 11 0 160",
                "E 1.0 0 1",
                "X 1.0 0 2",
                "R 1.0 0 170",
            ],
            2,
        );
        assert_eq!((f.acquisitions, f.completed, f.releases), (2, 2, 2));
        assert!(f.overlaps.is_empty() && f.lost_updates.is_empty() && f.corrupt.is_empty());
        assert_eq!(f.max_gap_ns, 60);
    }

    /// An enter while another section is open is an overlap, and the lost update it causes
    /// is reported too.
    #[test]
    fn overlap_found() {
        let f = run(
            &[
                "A 0.0 10 0 1",
                "E 0.0 0 0",
                "A 1.0 11 0 2",
                "E 1.0 0 0",
                "X 0.0 0 1",
                "X 1.0 0 1",
            ],
            1,
        );
        assert_eq!(f.overlaps.len(), 1, "{f:?}");
        assert!(!f.corrupt.is_empty() || !f.lost_updates.is_empty(), "{f:?}");
    }

    /// A killed section ends at its kill; the next may see its value or one more; recovery
    /// is measured from the kill to the next acquisition.
    #[test]
    fn kill_ends_section() {
        for (wrote, counter) in [(false, 1), (true, 2)] {
            let next = if wrote { "E 1.0 0 1" } else { "E 1.0 0 0" };
            let f = run(
                &[
                    "A 0.0 10 0 100",
                    "E 0.0 0 0",
                    "K 0.0 10 1000",
                    "A 1.0 11 0 1500",
                    next,
                    if wrote { "X 1.0 0 2" } else { "X 1.0 0 1" },
                ],
                counter,
            );
            assert!(f.overlaps.is_empty() && f.lost_updates.is_empty(), "{f:?}");
            assert!(f.corrupt.is_empty(), "{f:?}");
            assert_eq!(f.recoveries_ns, vec![500]);
            assert_eq!((f.kills, f.kills_in_section), (1, 1));
            assert_eq!(f.killed_after_write, u64::from(wrote));
        }
    }

    /// A value other than what the previous section left is a lost update; so is a final
    /// counter that does not match; a record after a kill is corruption.
    #[test]
    fn lost_update_and_zombie_record() {
        let f = run(&["E 0.0 0 0", "X 0.0 0 1", "E 1.0 0 0", "X 1.0 0 1"], 1);
        assert!(!f.lost_updates.is_empty(), "{f:?}");
        let f = run(&["E 0.0 0 0", "X 0.0 0 1"], 5);
        assert!(!f.lost_updates.is_empty(), "{f:?}");
        let f = run(&["E 0.0 0 0", "K 0.0 1 5", "X 0.0 0 1"], 1);
        assert!(!f.corrupt.is_empty(), "{f:?}");
        assert_eq!(f.unrecovered, 1);
        let f = run(&["E 0.0 0 0", "garbage"], 0);
        assert_eq!(f.corrupt.len(), 2, "{f:?}");
    }
}

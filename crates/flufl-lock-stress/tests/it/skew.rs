//! Clock skew: holders and waiters whose wall clocks libfaketime sets 30 s ahead or behind
//! (the file server's clock, which stamps the files, is the real one). Expiry is judged in
//! the file server's clock, learned from the mtime the server puts on the process's own
//! claim file, so no lock is broken early, and a dead holder's lock is recovered within its
//! lifetime plus a small margin, whatever the skew. Each probe first reports its measured
//! skew, so a libfaketime that does not take hold fails the test rather than passing it
//! vacuously.

use crate::pairs::{apart, side, together, Fate, Side};
use crate::support::{require_faketime, require_namespaces, run_cases, Place};

fn ns(hostname: &str) -> Place {
    Place::Ns {
        hostname: hostname.to_string(),
        pid: 2,
    }
}

const AHEAD: Option<&str> = Some("+30s");
const BEHIND: Option<&str> = Some("-30s");

/// Live holders: a skewed waiter never breaks early; a skewed holder's lock is neither
/// broken early (holder behind) nor kept 30 s too long (holder ahead).
#[test]
fn skewed_clocks_never_break_a_live_lock_early() {
    require_namespaces();
    require_faketime();
    let cases: Vec<(String, (Side, Side))> = vec![
        (
            "waiter 30 s ahead, same host".into(),
            (side(Place::Host, None), side(Place::Host, AHEAD)),
        ),
        (
            "waiter 30 s ahead, other host".into(),
            (side(ns("hosta"), None), side(ns("hostb"), AHEAD)),
        ),
        (
            "waiter 30 s behind, other host".into(),
            (side(ns("hosta"), None), side(ns("hostb"), BEHIND)),
        ),
        (
            "holder 30 s behind, other host".into(),
            (side(ns("hosta"), BEHIND), side(ns("hostb"), None)),
        ),
        (
            "holder 30 s ahead, other host".into(),
            (side(ns("hosta"), AHEAD), side(ns("hostb"), None)),
        ),
    ];
    run_cases(cases, |_, (h, w)| apart(&h, &w, Fate::Lives).summary);
}

/// Dead holders on another host, skewed either way: recovered by expiry in
/// lifetime + margin, never 30 s early or late.
#[test]
fn skewed_clocks_recover_dead_holders_in_lifetime_plus_margin() {
    require_namespaces();
    require_faketime();
    let cases: Vec<(String, (Side, Side))> = vec![
        (
            "holder 30 s ahead, waiter 30 s behind".into(),
            (side(ns("hosta"), AHEAD), side(ns("hostb"), BEHIND)),
        ),
        (
            "holder 30 s behind, waiter 30 s ahead".into(),
            (side(ns("hosta"), BEHIND), side(ns("hostb"), AHEAD)),
        ),
    ];
    run_cases(cases, |_, (h, w)| apart(&h, &w, Fate::Dies).summary);
}

/// A dead holder in the waiter's own namespace is broken at once under skewed clocks too.
#[test]
fn skewed_clocks_same_namespace_dead_holder_broken_at_once() {
    require_namespaces();
    require_faketime();
    type Offsets = (Option<&'static str>, Option<&'static str>);
    let cases: Vec<(String, Offsets)> = vec![
        ("holder ahead, waiter behind".into(), (AHEAD, BEHIND)),
        ("holder behind, waiter ahead".into(), (BEHIND, AHEAD)),
    ];
    run_cases(cases, |_, (h, w)| together("hosta", h, w).1);
}

//! Simulated hosts: processes in their own UTS and PID namespaces (`unshare --uts --pid
//! --fork --mount-proc`), with different host names and colliding pids, and with the host's
//! own name in another pid namespace. No live lock is ever broken by a pid check; a dead
//! holder in the waiter's own namespace is broken at once; one in another namespace, which
//! cannot be proven dead, is recovered when its lifetime runs out.

use crate::pairs::{apart, side, together, Fate, Side};
use crate::support::{nodename, require_namespaces, run_cases, Place};

fn ns(hostname: &str, pid: u32) -> Place {
    Place::Ns {
        hostname: hostname.to_string(),
        pid,
    }
}

type Check = fn(&crate::pairs::Seen);

/// Both claims name pid 2, and both processes prove their origin (boot id, pid namespace):
/// only the pid namespace tells them apart.
fn both_pid_2_same_name(s: &crate::pairs::Seen) {
    assert_eq!((s.holder.get("pid"), s.waiter.get("pid")), ("2", "2"));
    assert_eq!(s.holder.get("host"), s.waiter.get("host"));
    assert_eq!(s.holder.get("origin"), "yes");
    assert_ne!(s.holder.get("pidns"), s.waiter.get("pidns"));
}

/// A live holder in another namespace is never broken before its lifetime runs out, however
/// its pid looks from the waiter's namespace.
#[test]
fn live_holders_elsewhere_are_not_broken_by_the_pid_check() {
    require_namespaces();
    let host = nodename();
    let cases: Vec<(String, (Side, Side, Check))> = vec![
        (
            "other host names, both pid 2".into(),
            (
                side(ns("hosta", 2), None),
                side(ns("hostb", 2), None),
                |s| {
                    assert_eq!((s.holder.get("pid"), s.waiter.get("pid")), ("2", "2"));
                    assert_ne!(s.holder.get("host"), s.waiter.get("host"));
                },
            ),
        ),
        (
            "same host name, waiter's own pid 2 is another process".into(),
            (
                side(ns("shared", 2), None),
                side(ns("shared", 2), None),
                both_pid_2_same_name,
            ),
        ),
        (
            "same host name, no pid 2 in the waiter's namespace".into(),
            (
                side(ns("shared", 2), None),
                side(ns("shared", 1), None),
                |s| {
                    assert_eq!((s.holder.get("pid"), s.waiter.get("pid")), ("2", "1"));
                    assert_eq!(s.holder.get("host"), s.waiter.get("host"));
                    assert_eq!(s.holder.get("origin"), "yes");
                },
            ),
        ),
        (
            "the host's name in another pid namespace, waiter on the host".into(),
            (side(ns(&host, 2), None), side(Place::Host, None), |s| {
                assert_eq!(s.holder.get("pid"), "2");
                assert_eq!(s.holder.get("host"), s.waiter.get("host"));
                assert_eq!(s.holder.get("origin"), "yes");
            }),
        ),
        (
            "holder on the host, waiter in another pid namespace with the host's name".into(),
            (side(Place::Host, None), side(ns(&host, 1), None), |s| {
                assert_eq!(s.waiter.get("pid"), "1");
                assert_eq!(s.holder.get("host"), s.waiter.get("host"));
                assert_eq!(s.holder.get("origin"), "yes");
            }),
        ),
        (
            "pid namespace without its own /proc, waiter on the host".into(),
            (
                side(Place::NsSharedProc, None),
                side(Place::Host, None),
                |s| {
                    // /proc is the host's, so the holder cannot prove its pid namespace.
                    assert_eq!(s.holder.get("origin"), "no");
                    assert_eq!(s.holder.get("host"), s.waiter.get("host"));
                },
            ),
        ),
    ];
    run_cases(cases, |_, (h, w, check)| {
        let seen = apart(&h, &w, Fate::Lives);
        check(&seen);
        seen.summary
    });
}

/// A holder in another namespace that dies cannot be proven dead: its lock is recovered
/// when its lifetime runs out (in the file server's clock), not before and not much later.
#[test]
fn dead_holders_elsewhere_are_recovered_by_expiry() {
    require_namespaces();
    let cases: Vec<(String, (Side, Side, Check))> = vec![
        (
            "other host names, both pid 2".into(),
            (
                side(ns("hosta", 2), None),
                side(ns("hostb", 2), None),
                |s| {
                    assert_eq!((s.holder.get("pid"), s.waiter.get("pid")), ("2", "2"));
                },
            ),
        ),
        (
            "same host name, both pid 2".into(),
            (
                side(ns("shared", 2), None),
                side(ns("shared", 2), None),
                both_pid_2_same_name,
            ),
        ),
    ];
    run_cases(cases, |_, (h, w, check)| {
        let seen = apart(&h, &w, Fate::Dies);
        check(&seen);
        seen.summary
    });
}

/// A holder that dies in the waiter's own namespace (same host name, boot and pid
/// namespace) is proven dead and its lock broken at once, long before its 10 s lifetime.
#[test]
fn dead_holder_in_the_same_namespace_is_broken_at_once() {
    require_namespaces();
    let cases: Vec<(String, String)> = vec![
        ("namespace hosta".into(), "hosta".into()),
        ("namespace with the host's name".into(), nodename()),
    ];
    run_cases(cases, |_, hostname| together(&hostname, None, None).1);
}

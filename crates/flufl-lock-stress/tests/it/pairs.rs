//! A holder and a waiter, each placed on this host or in namespaces and under a fake clock
//! or not: when does the waiter get the lock?

use crate::support::{
    assert_skew, lock_dir, ms_between, Event, Place, Proc, Spec, EARLY, LATE, LIFETIME,
};
use std::time::Duration;

/// Whether the holder stays alive (holding, not refreshing) or SIGKILLs itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Lives,
    Dies,
}

/// One side of a pair.
#[derive(Debug, Clone)]
pub struct Side {
    pub place: Place,
    pub faketime: Option<&'static str>,
}

pub fn side(place: Place, faketime: Option<&'static str>) -> Side {
    Side { place, faketime }
}

/// What a pair run saw.
#[derive(Debug)]
pub struct Seen {
    pub holder: Event,
    pub waiter: Event,
    pub summary: String,
}

/// Holder and waiter in different places (so the waiter can never prove the holder dead):
/// the waiter must report the lock live, and take it only once it has expired, in the file
/// server's clock: `LIFETIME - EARLY <= taken <= LIFETIME + LATE` after the holder locked,
/// whether the holder lives or dies, whatever the clocks say.
pub fn apart(holder: &Side, waiter: &Side, fate: Fate) -> Seen {
    let (dir, lock) = lock_dir();
    let lock = lock.to_str().expect("utf-8 temp path").to_string();
    let life = LIFETIME.as_millis().to_string();
    let mut hargs = vec![
        "hold",
        "--lock",
        &lock,
        "--lifetime-ms",
        &life,
        "--tag",
        "holder",
    ];
    match fate {
        Fate::Lives => hargs.extend(["--hold-ms", "20000"]),
        Fate::Dies => hargs.extend(["--hold-ms", "300", "--die"]),
    }
    let h = Proc::spawn(
        "holder",
        &Spec::new(holder.place.clone(), holder.faketime, &hargs),
    );
    let hinfo = h.expect("holder", "info", Duration::from_secs(10));
    assert_skew(&hinfo, holder.faketime);
    let locked = h.expect("holder", "locked", Duration::from_secs(10));
    let wargs = [
        "acquire",
        "--lock",
        &lock,
        "--lifetime-ms",
        &life,
        "--timeout-ms",
        "8000",
        "--try-break",
        "--tag",
        "waiter",
    ];
    let w = Proc::spawn(
        "waiter",
        &Spec::new(waiter.place.clone(), waiter.faketime, &wargs),
    );
    let winfo = w.expect("waiter", "info", Duration::from_secs(10));
    assert_skew(&winfo, waiter.faketime);
    let brk = w.expect("waiter", "break", Duration::from_secs(10));
    assert_eq!(
        brk.fields.get("outcome").map(String::as_str),
        Some("live"),
        "the waiter broke (or could not judge) a lock it cannot prove dead before it expired: \
         {brk:?}\nholder: {}\nwaiter: {}",
        h.output(),
        w.output()
    );
    let acquired = w.expect(
        "waiter",
        "acquired",
        LIFETIME + LATE + Duration::from_secs(5),
    );
    let taken = ms_between(&locked, &acquired);
    let (lo, hi) = (
        (LIFETIME - EARLY).as_secs_f64() * 1e3,
        (LIFETIME + LATE).as_secs_f64() * 1e3,
    );
    assert!(
        taken >= lo,
        "PREMATURE BREAK: the waiter took the lock {taken:.1} ms after the holder locked, \
         before its {LIFETIME:?} lifetime ran out\nholder: {}\nwaiter: {}",
        h.output(),
        w.output()
    );
    assert!(
        taken <= hi,
        "SLOW RECOVERY: the waiter took the lock {taken:.1} ms after the holder locked; \
         expected by {hi:.0} ms\nholder: {}\nwaiter: {}",
        h.output(),
        w.output()
    );
    drop(dir);
    let summary = format!(
        "taken {taken:.0} ms after the holder locked (lifetime {} ms; holder {fate:?}, \
         pid {} host {} skew {} ms; waiter pid {} host {} skew {} ms)",
        LIFETIME.as_millis(),
        hinfo.get("pid"),
        hinfo.get("host"),
        hinfo.get("skew_ms"),
        winfo.get("pid"),
        winfo.get("host"),
        winfo.get("skew_ms"),
    );
    Seen {
        holder: hinfo,
        waiter: winfo,
        summary,
    }
}

/// Holder and waiter in the same new UTS+PID namespace (`hostname`), the holder (pid 2,
/// lifetime 10 s) SIGKILLs itself 1 s after locking: the waiter (pid 3), which proves it
/// dead, must take the lock at once. Returns ms from the death to the acquisition.
pub fn together(
    hostname: &str,
    holder_ft: Option<&'static str>,
    waiter_ft: Option<&'static str>,
) -> (f64, String) {
    let (dir, lock) = lock_dir();
    let lock = lock.to_str().expect("utf-8 temp path").to_string();
    let life = "10000";
    let holder = Spec::new(
        Place::Host,
        holder_ft,
        &[
            "hold",
            "--lock",
            &lock,
            "--lifetime-ms",
            life,
            "--hold-ms",
            "1000",
            "--die",
            "--tag",
            "holder",
        ],
    );
    let waiter = Spec::new(
        Place::Host,
        waiter_ft,
        &[
            "acquire",
            "--lock",
            &lock,
            "--lifetime-ms",
            life,
            "--timeout-ms",
            "8000",
            "--wait-for-lock-ms",
            "8000",
            "--try-break",
            "--tag",
            "waiter",
        ],
    );
    let p = Proc::spawn_together("namespace", hostname, &[holder, waiter]);
    let limit = Duration::from_secs(10);
    let hinfo = p.expect("holder", "info", limit);
    assert_skew(&hinfo, holder_ft);
    let locked = p.expect("holder", "locked", limit);
    let brk = p.expect("waiter", "break", limit);
    // The holder lives for 1 s: the waiter's break attempt, made at once, must find it live.
    let dying = p.expect("holder", "dying", limit);
    let acquired = p.expect("waiter", "acquired", limit);
    let out = p.output();
    let winfo = out
        .lines()
        .map(Event::parse)
        .find(|e| e.tag == "waiter" && e.event == "info")
        .expect("waiter info");
    assert_skew(&winfo, waiter_ft);
    assert_eq!(
        hinfo.get("pidns"),
        winfo.get("pidns"),
        "not in the same pid namespace:\n{out}"
    );
    assert_eq!(
        hinfo.get("origin"),
        "yes",
        "the holder's claim carries no proof:\n{out}"
    );
    assert_eq!(
        brk.get("outcome"),
        "live",
        "the waiter broke the lock of a live holder in its own namespace:\n{out}"
    );
    assert!(
        brk.t() < dying.t(),
        "the waiter tried to break too late to judge:\n{out}"
    );
    let after_death = ms_between(&dying, &acquired);
    assert!(
        after_death < 500.0,
        "a dead holder in the same namespace was not broken at once: taken {after_death:.1} ms \
         after it died (lifetime 10 s)\n{out}"
    );
    assert!(
        ms_between(&locked, &acquired) > 950.0,
        "taken while the holder lived:\n{out}"
    );
    drop(dir);
    (
        after_death,
        format!(
            "taken {after_death:.1} ms after the holder (pid {}) died, lifetime 10 s; waiter pid {}, \
             host {}",
            hinfo.get("pid"),
            winfo.get("pid"),
            winfo.get("host")
        ),
    )
}

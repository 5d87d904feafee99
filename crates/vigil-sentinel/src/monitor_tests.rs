use super::*;

#[test]
fn a_node_is_down_only_from_when_it_is_first_probed() {
    let h = Health::new();
    // Not yet probed: not known to be down (a group monitored long after this sentinel
    // started must not see its new master as down already).
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(h.down_for("g", "n"), Duration::ZERO);
    h.probing("g", "n", Duration::ZERO);
    std::thread::sleep(Duration::from_millis(30));
    let silent = h.down_for("g", "n");
    assert!(silent >= Duration::from_millis(30), "{silent:?}");
    // A second probe does not reset the clock; a good answer does.
    h.probing("g", "n", Duration::ZERO);
    assert!(h.down_for("g", "n") >= silent);
    h.ok("g", "n");
    assert!(h.down_for("g", "n") < Duration::from_millis(30));
}

#[test]
fn silence_counts_only_from_probes_that_were_sent() {
    let h = Health::new();
    let every = Duration::from_millis(20);
    h.probing("g", "n", every);
    h.ok("g", "n");
    // Answered, then no probe for a long while (this sentinel starved of CPU): the node
    // has been without an answer that long, but no probe went unanswered.
    std::thread::sleep(Duration::from_millis(60));
    assert!(h.down_for("g", "n") >= Duration::from_millis(60));
    assert_eq!(h.unanswered_for("g", "n"), Duration::ZERO);
    // A probe leaves and is not answered: counted from one interval before it.
    h.probing("g", "n", every);
    let u = h.unanswered_for("g", "n");
    assert!(u >= every && u < Duration::from_millis(50), "{u:?}");
    std::thread::sleep(Duration::from_millis(30));
    assert!(h.unanswered_for("g", "n") >= Duration::from_millis(50));
    // Later probes do not move the start; an answer ends it.
    h.probing("g", "n", every);
    assert!(h.unanswered_for("g", "n") >= Duration::from_millis(50));
    h.ok("g", "n");
    assert_eq!(h.unanswered_for("g", "n"), Duration::ZERO);
}

#[test]
fn a_status_answers_the_next_probe_only() {
    let h = Health::new();
    let every = Duration::from_millis(100);
    let st = NodeStatus::default();
    let ago = |d: Duration| Instant::now().checked_sub(d).unwrap();
    assert!(h.status_due("g", "n", every), "never asked");
    // A record alone (a status that came too slowly to count) answers no probe.
    let now = Instant::now();
    h.saw_status("g", "n", &st, now, now);
    assert!(h.status_due("g", "n", every));
    // A probe's own status, asked one interval ago, answers this probe; one asked two
    // intervals ago does not (every other probe asks).
    h.had_status("g", "n", ago(every));
    assert!(!h.status_due("g", "n", every));
    assert!(h.status_due("g", "other", every));
    let h = Health::new();
    h.had_status("g", "n", ago(every * 2));
    assert!(h.status_due("g", "n", every));
    // A later one is never replaced by an earlier.
    h.had_status("g", "n", Instant::now());
    h.had_status("g", "n", ago(every * 2));
    assert!(!h.status_due("g", "n", every));
    // The controller's counts the same, arriving within a probe's timeout.
    let h = Health::new();
    let now = Instant::now();
    h.controller_saw("g", "n", &st, now, now);
    assert!(!h.status_due("g", "n", every));
    assert!(h.status("g", "n").is_some());
    // One that arrived two intervals ago (a slow round) is already stale.
    let h = Health::new();
    let old = ago(every * 2);
    h.controller_saw("g", "n", &st, old, old);
    assert!(h.status_due("g", "n", every));
    // One slower than a probe may be (an admin port that stalls) answers no probe.
    h.controller_saw("g", "n", &st, ago(PROBE_TIMEOUT * 2), Instant::now());
    assert!(h.status_due("g", "n", every));
}

#[test]
fn an_earlier_status_never_replaces_a_later_one() {
    let h = Health::new();
    let later = Instant::now();
    let earlier = later.checked_sub(Duration::from_millis(500)).unwrap();
    let st = |offset| NodeStatus {
        offset,
        ..Default::default()
    };
    h.saw_status("g", "n", &st(2), earlier, later);
    // A slow status call that was sent before the probe's answer arrives after it.
    h.controller_saw("g", "n", &st(1), earlier, earlier);
    assert_eq!(h.status("g", "n").unwrap().offset, 2);
    // Asked for before `later`: not what the node held after it.
    assert_eq!(h.status_asked_since("g", "n", earlier).unwrap().offset, 2);
    assert!(h.status_asked_since("g", "n", later).is_none());
    let now = Instant::now();
    h.saw_status("g", "n", &st(3), later, now);
    assert_eq!(h.status("g", "n").unwrap().offset, 3);
    assert_eq!(h.status_asked_since("g", "n", later).unwrap().offset, 3);
}

#[test]
fn a_stall_of_this_sentinel_is_not_held_against_the_nodes() {
    let (h, events) = (Health::new(), crate::events::Events::default());
    let mut rx = events.subscribe();
    let settle = Duration::from_secs(1);
    let before = Instant::now().checked_sub(Duration::from_secs(5)).unwrap();
    // The last round ran 5 s ago (the sentinel stood still since): it says nothing about
    // a node with a probe out until its next round.
    assert!(!h.round(before, settle, &events));
    h.probing("g", "n", Duration::from_millis(20));
    assert_eq!(h.unanswered_for("g", "n"), Duration::ZERO);
    // Its next round finds the gap: TILT, and that probe is forgotten.
    let now = Instant::now();
    assert!(h.round(now, settle, &events));
    assert_eq!(rx.try_recv().unwrap().kind, "+tilt");
    assert!(h.tilt().is_some());
    assert_eq!(h.unanswered_for("g", "n"), Duration::ZERO);
    // A node announced down before the stall stays so, and none is judged anew.
    h.sdown.lock().insert(("g".into(), "down".into()));
    assert!(h.sdown("g", "down", Duration::ZERO, 1, &events));
    assert!(!h.sdown("g", "n", Duration::ZERO, 1, &events));
    h.probing("g", "n", Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(h.unanswered_for("g", "n"), Duration::ZERO);
    // Rounds on time for the longest down_after end it; the probe sent since counts.
    assert!(!h.round(now + Duration::from_millis(500), settle, &events));
    assert!(h.tilt().is_some());
    assert!(!h.round(now + Duration::from_millis(1000), settle, &events));
    let ev = rx.try_recv().unwrap();
    assert_eq!(
        (ev.kind, ev.detail.as_str()),
        ("-tilt", "#tilt mode exited")
    );
    assert!(h.tilt().is_none());
    assert!(rx.try_recv().is_err(), "no SDOWN changed in TILT");
    assert!(h.unanswered_for("g", "n") >= Duration::from_millis(30));
}

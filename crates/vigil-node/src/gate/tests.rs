//! The gate's decisions, table-driven, and its transitions.

use super::*;
use std::future::Future;

#[test]
fn gate() {
    let now = Instant::now();
    let mut s = State::new(false, true, 0, None);
    assert_eq!(s.write_denied(now), None);
    s.role = Role::Replica {
        host: "h".into(),
        port: 1,
    };
    assert_eq!(s.write_denied(now), Some(READONLY));
    let mut m = State::new(true, true, 3, None);
    assert_eq!(m.role, Role::Unassigned);
    assert_eq!(m.write_denied(now), Some(READONLY));
    m.role = Role::Master;
    assert_eq!(m.write_denied(now), Some(READONLY), "no lease yet");
    m.lease_until = Some(now + Duration::from_secs(1));
    assert_eq!(m.write_denied(now), None);
    assert_eq!(
        m.write_denied(now + Duration::from_secs(2)),
        Some(READONLY),
        "expired"
    );
    m.fenced = true;
    assert_eq!(m.write_denied(now), Some(READONLY));
}

/// Reads: (role, fenced, lease left in ms, lease_reads) -> refused?
#[test]
fn lease_reads() {
    let now = Instant::now();
    let replica = Role::Replica {
        host: "h".into(),
        port: 1,
    };
    for (i, (role, fenced, lease, lease_reads, refused)) in [
        (Role::Master, false, Some(1000), true, false),
        (Role::Master, false, None, true, true),
        (Role::Master, false, Some(0), true, true),
        (Role::Master, true, Some(1000), true, true),
        (Role::Unassigned, false, None, true, true),
        (replica.clone(), false, None, true, false),
        (Role::Master, false, None, false, false),
        (Role::Master, true, None, false, false),
        (Role::Unassigned, false, None, false, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = State::new(true, lease_reads, 1, None);
        s.role = role;
        s.fenced = fenced;
        s.lease_until = lease.map(|ms| now + Duration::from_millis(ms));
        let want = refused.then_some(READONLY_READS);
        assert_eq!(s.read_denied(now), want, "#{i}");
    }
    // Standalone nodes serve reads whatever the setting says.
    let mut s = State::new(false, true, 0, None);
    assert_eq!(s.read_denied(now), None);
    s.role = replica;
    assert_eq!(s.read_denied(now), None);
}

#[test]
fn a_lapse_is_reported_once() {
    let now = Instant::now();
    let mut m = State::new(true, true, 1, None);
    assert!(!m.lapsed(now, true), "never served: nothing lapsed");
    m.role = Role::Master;
    m.lease_until = Some(now + Duration::from_secs(1));
    assert!(!m.lapsed(now, true));
    let later = now + Duration::from_secs(2);
    assert!(m.lapsed(later, true), "the lease ran out");
    assert!(!m.lapsed(later, true), "once per lapse");
    m.lease_until = Some(later + Duration::from_secs(1));
    assert!(!m.lapsed(later, true), "renewed");
    m.fenced = true;
    assert!(m.lapsed(later, true), "fenced");
    // Without lease reads a lapse closes nothing.
    let mut off = State::new(true, false, 1, None);
    off.role = Role::Master;
    off.lease_until = Some(now + Duration::from_secs(1));
    assert!(!off.lapsed(now, true) && !off.lapsed(later, true));
}

#[test]
fn a_command_is_held_for_one_lease_length_after_a_lapse() {
    let now = Instant::now();
    let mut m = State::new(true, true, 1, None);
    assert_eq!(m.held_until(now), None, "never leased: refused at once");
    m.role = Role::Master;
    m.extend_lease(now + Duration::from_millis(400), now);
    assert_eq!(m.held_until(now), None, "inside the lease: runs");
    let lapsed = now + Duration::from_millis(500);
    assert_eq!(
        m.held_until(lapsed),
        Some(now + Duration::from_millis(800)),
        "held until one lease length after the end"
    );
    assert_eq!(
        m.held_until(now + Duration::from_millis(800)),
        None,
        "then refused"
    );
    assert!(!m.lapsed(now, true), "serving");
    assert!(
        !m.lapsed(lapsed, true),
        "a held lapse sends no client away yet"
    );
    assert!(
        m.lapsed(now + Duration::from_millis(800), true),
        "past the hold it does"
    );
    m.extend_lease(now + Duration::from_millis(900), now);
    assert!(!m.lapsed(now, true));
    assert!(
        m.lapsed(now + Duration::from_millis(1000), false),
        "in cluster mode, nothing is held: a lapse at once"
    );
    m.extend_lease(now + Duration::from_millis(400), now);
    assert_eq!(
        m.held_until(now + Duration::from_millis(1000)),
        Some(now + Duration::from_millis(1800)),
        "a stale grant changes neither the lease nor the hold"
    );
    m.fenced = true;
    assert_eq!(
        m.held_until(lapsed),
        None,
        "a fenced master refuses at once"
    );
    m.fenced = false;
    m.role = Role::Replica {
        host: "h".into(),
        port: 1,
    };
    assert_eq!(m.held_until(lapsed), None, "so does a replica");
    // Without lease reads nothing is held: Redis' behaviour, `-READONLY` at once.
    let mut off = State::new(true, false, 1, None);
    off.role = Role::Master;
    off.extend_lease(now + Duration::from_millis(400), now);
    assert_eq!(off.held_until(lapsed), None);
}

#[test]
fn a_held_command_goes_on_when_the_lease_is_renewed() {
    let g = managed_gate();
    g.promote();
    let now = Instant::now();
    g.lift_fence(Some(now + Duration::from_millis(300)));
    std::thread::sleep(Duration::from_millis(400));
    let until = g.held_until(Instant::now()).expect("held after the lapse");
    block_on(async {
        let renew = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = Instant::now();
            g.renew_lease(now + Duration::from_secs(5), now).unwrap();
        };
        let waited = async {
            g.lease_back(until + Duration::from_secs(10)).await;
            Instant::now()
        };
        let ((), back) = tokio::join!(renew, waited);
        assert!(
            back < until + Duration::from_secs(1),
            "woken by the renewal"
        );
    });
    assert_eq!(g.held_until(Instant::now()), None);
}

fn standalone() -> Gate {
    Gate::new(false, true, 0, None, (0, Duration::ZERO), 0)
}

fn managed_gate() -> Gate {
    Gate::new(true, true, 1, None, (0, Duration::ZERO), 0)
}

/// Admission: (gate, flags, good replicas, link ok) -> result.
#[test]
fn admit_table() {
    let w = Flags::WRITE;
    let r = Flags::READONLY;
    let stale = Flags(Flags::READONLY.0 | Flags::STALE.0);
    let leased = || {
        let g = managed_gate();
        g.promote();
        g.lift_fence(Some(Instant::now() + Duration::from_secs(60)));
        g
    };
    let replica = || {
        let g = standalone();
        g.follow("h".into(), 1);
        g
    };
    let min2 = || Gate::new(false, true, 0, None, (2, Duration::from_secs(10)), 0);
    let err = |e: &'static str| Err(Reply::error(e));
    for (i, (g, flags, good, link, want)) in [
        (standalone(), w, 0, true, Ok(false)),
        (standalone(), r, 0, true, Ok(false)),
        (leased(), w, 0, true, Ok(false)),
        (leased(), r, 0, true, Ok(false)),
        (managed_gate(), w, 0, true, err(READONLY)),
        (managed_gate(), r, 0, true, err(READONLY_READS)),
        (replica(), w, 0, true, err(READONLY)),
        (replica(), r, 0, true, Ok(true)),
        (replica(), r, 0, false, err(MASTERDOWN)),
        (replica(), stale, 0, false, Ok(true)),
        (min2(), w, 1, true, err(NOREPLICAS)),
        (min2(), w, 2, true, Ok(false)),
        (min2(), r, 0, true, Ok(false)),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            g.admit(flags, Instant::now(), |_| good, || link),
            want,
            "#{i}"
        );
    }
}

/// `admit_as` with `master` says yes exactly when `serves_as_master` and `admit` both do (the
/// cluster batch path folds the two into it), and then what `admit` says.
#[test]
fn admit_as_master_is_serves_as_master_and_admit() {
    let now = Instant::now();
    fn leased(until: Instant) -> Gate {
        let g = managed_gate();
        g.promote();
        g.lift_fence(Some(until));
        g
    }
    fn replica() -> Gate {
        let g = managed_gate();
        g.follow("h".into(), 1);
        g
    }
    type Make = fn() -> Gate;
    let gates: Vec<(&str, Make)> = vec![
        ("standalone", standalone),
        ("leased", || {
            leased(Instant::now() + Duration::from_secs(60))
        }),
        ("lapsed", || {
            leased(
                Instant::now()
                    .checked_sub(Duration::from_millis(1))
                    .unwrap(),
            )
        }),
        ("unassigned", managed_gate),
        ("replica", replica),
        ("min2", || {
            Gate::new(false, true, 0, None, (2, Duration::from_secs(10)), 0)
        }),
    ];
    for (what, g) in gates {
        for flags in [Flags::WRITE, Flags::READONLY] {
            for good in [0, 2] {
                let g = g();
                let write = flags.has(Flags::WRITE);
                let both = g.serves_as_master(now, write, false).is_ok()
                    && g.admit(flags, now, |_| good, || true).is_ok();
                let got = g.admit_as(flags, now, true, |_| good, || true);
                assert_eq!(got.is_ok(), both, "{what} write={write} good={good}");
                if got.is_ok() {
                    assert_eq!(got, g.admit(flags, now, |_| good, || true), "{what}");
                }
            }
        }
    }
}

#[test]
fn transitions() {
    let dir = tempfile::tempdir().unwrap();
    let g = managed_gate();
    assert_eq!(g.role(), Role::Unassigned);
    assert!(!g.may_write(Instant::now()));
    assert!(g.promote(), "unassigned -> master is a change");
    assert!(!g.promote(), "already a master");
    assert!(!g.may_write(Instant::now()), "managed: no lease yet");
    assert!(g.leads(), "a master without a lease still leads its shard");
    let now = Instant::now();
    let granted = g.renew_lease(now + Duration::from_secs(5), now).unwrap();
    assert_eq!(
        (granted.epoch, granted.remaining),
        (1, Duration::from_secs(5))
    );
    // A lease never shrinks.
    let granted = g.renew_lease(now + Duration::from_secs(1), now).unwrap();
    assert_eq!(granted.remaining, Duration::from_secs(5));
    assert!(g.may_write(now));
    assert!(
        !g.may_write(now + Duration::from_secs(6)) && g.leads(),
        "a lapse alone"
    );
    g.fence();
    assert!(!g.may_write(now));
    assert!(!g.leads(), "fenced");
    assert_eq!(
        g.renew_lease(now + Duration::from_secs(5), now),
        Err(LeaseRefused::Fenced { epoch: 1 })
    );
    g.lift_fence(Some(now + Duration::from_secs(2)));
    assert!(g.may_write(now));
    g.follow("m".into(), 7);
    assert!(!g.leads(), "a replica");
    assert_eq!(
        g.role(),
        Role::Replica {
            host: "m".into(),
            port: 7
        }
    );
    assert_eq!(
        g.view(now).lease_remaining,
        Duration::ZERO,
        "following drops the lease"
    );
    assert_eq!(
        g.renew_lease(now + Duration::from_secs(5), now),
        Err(LeaseRefused::NotMaster)
    );
    // Epochs: lower refused, equal a no-op, higher persisted first.
    assert!(matches!(
        g.accept_epoch(0, dir.path()),
        Err(EpochRefused::Stale {
            epoch: 0,
            current: 1
        })
    ));
    assert!(!g.accept_epoch(1, dir.path()).unwrap());
    assert!(g.accept_epoch(5, dir.path()).unwrap());
    assert_eq!(
        (g.epoch(), vigil_base::epoch::load(dir.path()).unwrap()),
        (5, 5)
    );
    // A standalone master writes freely; following and promoting keep the fast path in step.
    let s = standalone();
    assert_eq!(
        s.admit(Flags::WRITE, Instant::now(), |_| 0, || true),
        Ok(false)
    );
    s.follow("m".into(), 7);
    assert_eq!(
        s.admit(Flags::WRITE, Instant::now(), |_| 0, || true),
        Err(Reply::error(READONLY))
    );
    assert!(s.promote());
    assert_eq!(
        s.admit(Flags::WRITE, Instant::now(), |_| 0, || true),
        Ok(false)
    );
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

/// Acknowledgement: (gate may write, sync (n), replicas that acked) -> cut?
#[test]
fn settle_table() {
    for (i, (writable, n, acked, cut)) in [
        (true, 0, 0, None),
        (true, 1, 1, None),
        (true, 2, 1, Some(3)),
        (false, 0, 0, Some(3)),
        (false, 1, 1, Some(3)),
    ]
    .into_iter()
    .enumerate()
    {
        let g = managed_gate();
        g.promote();
        if writable {
            g.lift_fence(Some(Instant::now() + Duration::from_secs(60)));
        }
        let mut p = PendingAck::default();
        p.reply_at(1); // a read's reply: not recorded
        p.wrote(42);
        p.reply_at(3);
        p.wrote(50);
        p.reply_at(9);
        let got = block_on(g.settle(
            &mut p,
            || (n, Duration::from_millis(1)),
            |off, _, _| {
                assert_eq!(off, 50, "#{i}: waits for the last write");
                async move { acked }
            },
        ));
        assert_eq!(got.map_err(|u| u.cut), cut.map_or(Ok(()), Err), "#{i}");
        // Settled: the next check has nothing pending.
        assert_eq!(
            block_on(g.settle(
                &mut p,
                || panic!("read only when a write is pending"),
                |_, _, _| async { 0 }
            )),
            Ok(())
        );
    }
    // Why, by condition.
    let g = managed_gate();
    g.promote();
    g.fence();
    let mut p = PendingAck::default();
    p.wrote(1);
    let u = block_on(g.settle(&mut p, || (0, Duration::ZERO), |_, _, _| async { 0 })).unwrap_err();
    assert_eq!(
        (u.cut, u.why.as_str()),
        (0, "the node was fenced before it was acknowledged")
    );
}

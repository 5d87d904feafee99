//! The log and snapshot files: reopening, conflicts, torn tails, corruption, compaction.

use super::*;

fn entry(index: u64, term: u64) -> Entry {
    let mut e = Entry {
        index,
        term,
        ..Default::default()
    };
    e.set_data(format!("cmd{index}").into_bytes().into());
    e
}

fn ents(s: &DiskStorage, low: u64, high: u64) -> Vec<(u64, u64)> {
    s.entries(low, high, None, GetEntriesContext::empty(false))
        .unwrap()
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

fn hard(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

#[test]
fn survives_reopen_and_truncates_conflicts() {
    let d = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    assert!(!s.is_initialized());
    s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>())
        .unwrap();
    s.set_hard_state(&hard(1, 2, 4));
    let mut cs = ConfState::default();
    cs.set_voters(vec![1, 2, 3]);
    s.set_conf_state(&cs);
    s.sync().unwrap();
    // A new leader overwrites 6.. with its own entries of term 2.
    s.append(&[entry(6, 2), entry(7, 2)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = DiskStorage::open(d.path()).unwrap();
    assert!(s.is_initialized());
    assert_eq!(s.last_index().unwrap(), 7);
    assert_eq!(ents(&s, 5, 8), vec![(5, 1), (6, 2), (7, 2)]);
    let st = s.initial_state().unwrap();
    assert_eq!(
        (st.hard_state.term, st.hard_state.vote, st.hard_state.commit),
        (1, 2, 4)
    );
    assert_eq!(st.conf_state.get_voters(), &[1, 2, 3]);
    // Out of range asks are errors, never panics.
    assert!(
        s.entries(5, 99, None, GetEntriesContext::empty(false))
            .is_err()
    );
    assert!(s.term(99).is_err());
}

#[test]
fn unsynced_records_are_not_durable() {
    let d = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    s.append(&[entry(1, 1)]).unwrap();
    s.sync().unwrap();
    s.append(&[entry(2, 1)]).unwrap();
    drop(s);
    let s = DiskStorage::open(d.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 1);
}

#[test]
fn a_torn_tail_is_truncated_at_every_cut() {
    let d = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
    s.set_hard_state(&hard(1, 1, 2));
    s.sync().unwrap();
    let clean = std::fs::read(d.path().join(LOG_FILE)).unwrap();
    s.append(&[entry(3, 1), entry(4, 1)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let full = std::fs::read(d.path().join(LOG_FILE)).unwrap();
    for cut in clean.len()..full.len() {
        std::fs::write(d.path().join(LOG_FILE), &full[..cut]).unwrap();
        let s = DiskStorage::open(d.path()).unwrap();
        assert_eq!(s.last_index().unwrap(), 2, "cut {cut}");
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 2);
        assert_eq!(
            std::fs::metadata(d.path().join(LOG_FILE)).unwrap().len() as usize,
            clean.len(),
            "cut {cut}: torn tail not truncated"
        );
    }
}

#[test]
fn damage_before_the_tail_is_refused_with_file_and_offset() {
    let d = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    s.append(&[entry(1, 1)]).unwrap();
    s.sync().unwrap();
    s.append(&[entry(2, 1)]).unwrap();
    s.set_hard_state(&hard(1, 1, 2));
    s.sync().unwrap();
    drop(s);
    let path = d.path().join(LOG_FILE);
    let good = std::fs::read(&path).unwrap();
    for at in [0usize, 4, 8, 12] {
        let mut bad = good.clone();
        bad[at] ^= 0x55;
        std::fs::write(&path, &bad).unwrap();
        let e = DiskStorage::open(d.path())
            .err()
            .expect("damage must be refused");
        let msg = e.to_string();
        assert!(
            msg.contains(LOG_FILE) && msg.contains("corrupt at byte 0"),
            "#{at}: {msg}"
        );
    }
}

#[test]
fn compaction_and_snapshots_survive_reopen_and_crashes_between_steps() {
    let d = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    s.append(&(1..=10).map(|i| entry(i, 1 + i / 6)).collect::<Vec<_>>())
        .unwrap();
    s.set_hard_state(&hard(2, 1, 8));
    s.sync().unwrap();
    let before = std::fs::read(d.path().join(LOG_FILE)).unwrap();
    let mut cs = ConfState::default();
    cs.set_voters(vec![1, 2]);
    // Not beyond the commit index.
    assert!(s.compact(9, cs.clone(), b"state".to_vec()).is_err());
    s.compact(7, cs.clone(), b"state@7".to_vec()).unwrap();
    assert_eq!(s.first_index().unwrap(), 8);
    assert_eq!(s.term(7).unwrap(), 2);
    assert!(
        s.entries(5, 9, None, GetEntriesContext::empty(false))
            .is_err()
    );
    assert!(s.snapshot(9, 2).is_err(), "a newer snapshot is asked for");
    assert!(s.take_snapshot_request());
    assert_eq!(s.snapshot(7, 2).unwrap().get_data(), b"state@7");
    // A sentinel the snapshot does not know (it joined later) gets a fresh one instead.
    assert!(s.snapshot(7, 3).is_err());
    assert!(s.take_snapshot_request());
    drop(s);
    let s = DiskStorage::open(d.path()).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (8, 10));
    assert_eq!(s.latest_snapshot().get_data(), b"state@7");
    assert_eq!(ents(&s, 8, 11), vec![(8, 2), (9, 2), (10, 2)]);
    drop(s);
    // A crash after the snapshot was written but before the log was rewritten.
    std::fs::write(d.path().join(LOG_FILE), &before).unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (8, 10));
    assert_eq!(s.initial_state().unwrap().hard_state.commit, 8);
}

#[test]
fn a_snapshot_from_the_leader_replaces_the_log() {
    let d = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
    s.sync().unwrap();
    let mut snap = Snapshot::default();
    snap.set_data(b"leader state".to_vec().into());
    snap.mut_metadata().index = 50;
    snap.mut_metadata().term = 4;
    snap.mut_metadata()
        .mut_conf_state()
        .set_voters(vec![1, 2, 3]);
    s.apply_snapshot(snap).unwrap();
    drop(s);
    let s = DiskStorage::open(d.path()).unwrap();
    assert_eq!(
        (s.first_index().unwrap(), s.last_index().unwrap()),
        (51, 50)
    );
    assert_eq!(s.term(50).unwrap(), 4);
    let st = s.initial_state().unwrap();
    assert_eq!((st.hard_state.commit, st.hard_state.term), (50, 4));
    assert_eq!(st.conf_state.get_voters(), &[1, 2, 3]);
    // Entries continue after it.
    s.append(&[entry(51, 4)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = DiskStorage::open(d.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 51);
    // A damaged snapshot file is refused by name.
    let p = d.path().join(SNAP_FILE);
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    std::fs::write(&p, &b).unwrap();
    drop(s);
    let e = DiskStorage::open(d.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains(SNAP_FILE), "{e}");
}

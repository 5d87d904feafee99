//! Starting the driver from a damaged snapshot.

use super::*;
use raft::eraftpb::Snapshot;

struct Nowhere;
impl Transport for Nowhere {
    fn send(&self, _: Vec<Message>) {}
}

#[test]
fn a_snapshot_whose_state_does_not_decode_stops_the_start_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(d.path()).unwrap();
    let mut snap = Snapshot::default();
    snap.set_data(b"{not the state".to_vec().into());
    snap.mut_metadata().index = 5;
    snap.mut_metadata().term = 1;
    snap.mut_metadata().mut_conf_state().set_voters(vec![1]);
    s.apply_snapshot(snap).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let e = start(1, s, &[1], Options::default(), Arc::new(Nowhere))
        .err()
        .expect("a damaged state must not start empty")
        .to_string();
    assert!(e.contains(crate::storage::SNAP_FILE), "{e}");
}

/// Raft waits on a snapshot's outcome until it is told: a queue full of peer messages must
/// not swallow the transport's report of it (nor of an unreachable peer).
#[test]
fn transport_reports_get_through_a_full_message_queue() {
    let (tx, _rx) = mpsc::channel(1);
    let (reports, mut reports_rx) = mpsc::unbounded_channel();
    let (_leading_tx, leading) = tokio::sync::watch::channel(false);
    let h = Handle {
        tx,
        reports,
        state: Arc::default(),
        status: Arc::default(),
        events: crate::events::Events::default(),
        version: Arc::default(),
        leading,
    };
    h.step(Message::default());
    h.step(Message::default()); // the queue is full: dropped (Raft resends messages)
    h.snapshot_status(2, false);
    h.unreachable(3);
    assert!(matches!(
        reports_rx.try_recv(),
        Ok(Msg::SnapshotStatus(2, false))
    ));
    assert!(matches!(reports_rx.try_recv(), Ok(Msg::Unreachable(3))));
}

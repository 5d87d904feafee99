//! The served view on disk: `cluster-view.pb` in the node's directory (next to `epoch`), the
//! view's protobuf encoding exactly as received. Written durably before the view is served;
//! read at start-up, where a damaged file stops the node rather than let it serve no map.

use std::io;
use std::path::Path;

use prost::Message;
use vigil_proto::node as pb;

use super::{View, digest};
use crate::error::NodeError;

/// The file, inside the node's directory.
pub const VIEW_FILE: &str = "cluster-view.pb";

/// What a damaged file's error says to do.
const FIX: &str = "delete it to start outside cluster mode: the sentinels push the view again";

/// Reads the persisted view in `dir` (`None`: the node is not in a cluster).
pub fn load(dir: &Path) -> Result<Option<View>, NodeError> {
    let path = dir.join(VIEW_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NodeError::io("cannot read the cluster view", path)(e)),
    };
    let corrupt = |why: String| {
        NodeError::io("cannot load the cluster view", &path)(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is corrupt ({why}); {FIX}"),
        ))
    };
    let pbv = pb::ClusterView::decode(&bytes[..]).map_err(|e| corrupt(e.to_string()))?;
    View::from_proto(&pbv, digest(&bytes))
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// Removes the persisted view in `dir` durably (the node left its cluster).
pub fn remove(dir: &Path) -> Result<(), NodeError> {
    let path = dir.join(VIEW_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => vigil_base::fs::sync_parent(&path)
            .map_err(NodeError::io("cannot remove the cluster view", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NodeError::io("cannot remove the cluster view", path)(e)),
    }
}

/// Persists an encoded view in `dir` durably (temp file, fsync, rename, fsync the directory).
pub fn save(dir: &Path, encoded: &[u8]) -> Result<(), NodeError> {
    let path = dir.join(VIEW_FILE);
    vigil_base::fs::write_durable(&path, encoded)
        .map_err(NodeError::io("cannot write the cluster view", path))
}

//! Applying a command from the append log or a master's replication stream
//! ([`apply_logged`]): deterministic, never blocking, never expiring on lookup.

use bytes::Bytes;
use vigil_resp::Args;

use crate::ctx::{Ctx, DataFn, Prop};
use crate::db::Store;
use crate::node::Handler;

/// Replays append logs (oldest first) into `store`, following the stream position in `pos`;
/// returns the newest log's generation. `limits`: the largest bulk and multibulk a log may
/// hold.
pub(crate) fn replay_logs(
    table: &vigil_resp::command::CommandTable<Handler>,
    store: &mut Store,
    logs: &[(u64, std::path::PathBuf)],
    pos: &mut crate::persist::replay::ReplPos,
    limits: (usize, usize),
    now: i64,
) -> Result<Option<u64>, crate::error::NodeError> {
    let databases = store.dbs.len();
    let mut scratch = Vec::new();
    for (_, path) in logs {
        crate::persist::replay::replay_log(path, pos, limits, databases, |db, cmd| {
            let r = apply_logged(
                table,
                crate::cmd::functions::logged,
                store,
                db,
                cmd,
                now,
                &mut scratch,
            );
            scratch.clear();
            r
        })?;
    }
    Ok(logs.last().map(|(g, _)| *g))
}

/// Applies a command from the log or a master's stream: deterministic (no expiry on lookup,
/// no blocking). A command that fails is logged and skipped: it changed nothing when it first
/// ran either. `Err` only for what can never appear in a stream. `replay` names the data
/// command that applies a node command's logged change (FUNCTION's: `cmd::functions::logged`).
pub(crate) fn apply_logged(
    table: &vigil_resp::command::CommandTable<Handler>,
    replay: fn(&str) -> Option<DataFn>,
    store: &mut Store,
    db: usize,
    cmd: Vec<Bytes>,
    now: i64,
    scratch: &mut Vec<Prop>,
) -> Result<(), String> {
    let entry = table.get(&cmd[0]);
    let logged = entry.and_then(|(m, _)| replay(m.name));
    let Some((meta, f)) = entry.and_then(|(m, h)| match h {
        Handler::Data(f) => Some((m, f)),
        _ => logged.as_ref().map(|f| (m, f)),
    }) else {
        return Err(format!(
            "command '{}' cannot appear in a log or replication stream",
            String::from_utf8_lossy(&cmd[0])
        ));
    };
    if !meta.arity_ok(cmd.len()) {
        return Err(format!("wrong argument count for '{}'", meta.name));
    }
    let tracking = store.tracking().clone();
    tracking.set_current(0);
    let mut ctx = Ctx::new(store, db, now, scratch);
    ctx.loading = true;
    let mut args = Args::new(cmd);
    if let Err(e) = f(&mut ctx, &mut args) {
        tracing::warn!(command = meta.name, error = %e, "logged command failed when applied");
    }
    ctx.finish(&args);
    tracking.flush();
    Ok(())
}

//! Server commands: COMMAND, SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, SHUTDOWN (INFO and CONFIG have
//! their own files).

use std::sync::atomic::Ordering;

use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::node::Node;
use crate::node::{Handler, row};
use crate::session::ConnState;

/// The server family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "command",
            -1,
            [STALE],
            0,
            0,
            0,
            "server",
            "Describes the commands.",
            Node(command)
        ),
        row!(
            "save",
            1,
            [ADMIN, NO_MULTI],
            0,
            0,
            0,
            "server",
            "Writes a snapshot synchronously.",
            Node(save)
        ),
        row!(
            "bgsave",
            -1,
            [ADMIN],
            0,
            0,
            0,
            "server",
            "Writes a snapshot in the background.",
            Node(bgsave)
        ),
        row!(
            "bgrewriteaof",
            1,
            [ADMIN],
            0,
            0,
            0,
            "server",
            "Compacts the append log in the background.",
            Node(bgrewriteaof)
        ),
        row!(
            "lastsave",
            1,
            [FAST, STALE],
            0,
            0,
            0,
            "server",
            "Unix time of the last successful snapshot.",
            Node(lastsave)
        ),
        row!(
            "shutdown",
            -1,
            [ADMIN, NO_MULTI, STALE],
            0,
            0,
            0,
            "server",
            "Makes data durable and stops the server.",
            Node(shutdown)
        ),
    ]
}

fn command(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    conn.reply(node.table.command_reply(args.all()));
}

fn save(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    let r = match node.save() {
        Ok(()) => Reply::ok(),
        Err(e) => Reply::error(format!("ERR {e}")),
    };
    conn.reply(r);
}

fn bgsave(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let schedule = args.eat("schedule");
    let r = if !args.is_empty() {
        Reply::error("ERR syntax error")
    } else if node.save_background() {
        Reply::simple("Background saving started")
    } else if schedule {
        Reply::simple("Background saving scheduled")
    } else {
        Reply::error("ERR Background save already in progress")
    };
    conn.reply(r);
}

fn bgrewriteaof(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    let r = if node.save_background() {
        Reply::simple("Background append only file rewriting started")
    } else {
        Reply::error("ERR Background append only file rewriting already in progress")
    };
    conn.reply(r);
}

fn lastsave(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    conn.reply(Reply::Int(node.persist.last_save.load(Ordering::Relaxed)));
}

fn shutdown(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let mut save = false;
    let mut nosave = false;
    while let Some(a) = args.next() {
        match &a.to_ascii_lowercase()[..] {
            b"save" => save = true,
            b"nosave" => nosave = true,
            b"now" | b"force" => {}
            b"abort" => {
                conn.reply(Reply::error("ERR No shutdown in progress."));
                return;
            }
            _ => {
                conn.reply(Reply::error("ERR syntax error"));
                return;
            }
        }
    }
    if save
        && !nosave
        && let Err(e) = node.save()
    {
        conn.reply(Reply::error(format!(
            "ERR Errors trying to SHUTDOWN. Check logs. ({e})"
        )));
        return;
    }
    tracing::info!(client = conn.info.id, "SHUTDOWN requested");
    // The connection closes without a reply, as with Redis.
    conn.close = true;
    node.shared.shutdown.cancel();
}

//! The connection family's command-table rows, defined once: the node and the sentinel list
//! the same HELLO, AUTH, CLIENT, PING, ECHO, SELECT, QUIT and (P)(UN)SUBSCRIBE entries, with
//! the same arity, flags and help, so both answer `COMMAND`, arity errors and subscribed-mode
//! checks identically. The handlers are in [`crate::builtin`].

use crate::args::Args;
use crate::builtin;
use crate::command::{CommandMeta, Flags};
use crate::conn::Conn;
use crate::pubsub::Space;
use crate::pubsub::commands::{subscribe, unsubscribe};

/// A handler that needs only the connection (its per-server state is `S`).
pub type ConnFn<S> = fn(&mut Conn<S>, Args);

const fn flags(list: &[Flags]) -> Flags {
    let mut bits = 0;
    let mut i = 0;
    while i < list.len() {
        bits |= list[i].0;
        i += 1;
    }
    Flags(bits)
}

/// The shared rows, for a server whose connection state is `S`.
pub fn rows<S>() -> Vec<(CommandMeta, ConnFn<S>)> {
    use Flags as F;
    let sub = flags(&[F::PUBSUB, F::STALE, F::SUBSCRIBED]);
    vec![
        (
            CommandMeta::keyless(
                "hello",
                -1,
                flags(&[F::NO_AUTH, F::FAST, F::STALE, F::SUBSCRIBED]),
                "connection",
                "Handshakes: protocol version, authentication, client name.",
            ),
            builtin::hello,
        ),
        (
            CommandMeta::keyless(
                "auth",
                -2,
                flags(&[F::NO_AUTH, F::FAST, F::STALE]),
                "connection",
                "Authenticates the connection.",
            ),
            builtin::auth,
        ),
        (
            CommandMeta::keyless(
                "client",
                -2,
                flags(&[F::ADMIN, F::STALE]),
                "connection",
                "Inspects and manages client connections.",
            ),
            builtin::client,
        ),
        (
            CommandMeta::keyless(
                "acl",
                -2,
                flags(&[F::ADMIN, F::STALE, F::NOSCRIPT]),
                "server",
                "Manages ACL users: SETUSER, GETUSER, DELUSER, LIST, LOG, SAVE, LOAD ….",
            ),
            crate::acl::commands::acl,
        ),
        (
            CommandMeta::keyless(
                "ping",
                -1,
                flags(&[F::FAST, F::SUBSCRIBED]),
                "connection",
                "Returns PONG.",
            ),
            builtin::ping,
        ),
        (
            CommandMeta::keyless(
                "echo",
                2,
                flags(&[F::FAST, F::STALE]),
                "connection",
                "Returns the message.",
            ),
            builtin::echo,
        ),
        (
            CommandMeta::keyless(
                "quit",
                -1,
                flags(&[F::NO_AUTH, F::FAST, F::STALE, F::SUBSCRIBED, F::UNQUEUED]),
                "connection",
                "Closes the connection.",
            ),
            builtin::quit,
        ),
        (
            CommandMeta::keyless(
                "select",
                2,
                flags(&[F::FAST, F::STALE]),
                "connection",
                "Selects the database.",
            ),
            builtin::select,
        ),
        (
            CommandMeta::keyless("subscribe", -2, sub, "pubsub", "Subscribes to channels."),
            |c, a| subscribe(c, a, Space::Channel),
        ),
        (
            CommandMeta::keyless(
                "psubscribe",
                -2,
                sub,
                "pubsub",
                "Subscribes to channel patterns.",
            ),
            |c, a| subscribe(c, a, Space::Pattern),
        ),
        (
            CommandMeta::keyless(
                "unsubscribe",
                -1,
                sub,
                "pubsub",
                "Unsubscribes from channels.",
            ),
            |c, a| unsubscribe(c, a, Space::Channel),
        ),
        (
            CommandMeta::keyless(
                "punsubscribe",
                -1,
                sub,
                "pubsub",
                "Unsubscribes from channel patterns.",
            ),
            |c, a| unsubscribe(c, a, Space::Pattern),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_lower_case_and_listed_once() {
        let rows = rows::<()>();
        let mut names: Vec<&str> = rows.iter().map(|(m, _)| m.name).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(*n, n.to_ascii_lowercase(), "#{i}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), rows.len());
    }
}

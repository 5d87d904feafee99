//! Stream commands on entries: XADD, XTRIM, XRANGE, XREVRANGE, XLEN, XDEL, XSETID.
//!
//! What they propagate is deterministic: XADD carries the id it generated, and an
//! approximate (`~`) trim is rewritten as an exact one to the length (or first id) it reached,
//! so the log and replicas trim exactly as the master did.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::{Ctx, int_arg};
use crate::db::notify::STREAM;
use crate::db::stream::{ENTRY_MAX_BYTES, Entry, NodeLimits, Stream, StreamId, Trim};
use crate::node::{Handler, row};

/// The rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "xadd",
            -5,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "stream",
            "Appends an entry to a stream, creating it if needed.",
            Data(xadd)
        ),
        row!(
            "xtrim",
            -4,
            [WRITE],
            1,
            1,
            1,
            "stream",
            "Removes the oldest entries of a stream.",
            Data(xtrim)
        ),
        row!(
            "xrange",
            -4,
            [READONLY],
            1,
            1,
            1,
            "stream",
            "Returns the entries within a range of ids.",
            Data(|c, a| xrange(c, a, false))
        ),
        row!(
            "xrevrange",
            -4,
            [READONLY],
            1,
            1,
            1,
            "stream",
            "Returns the entries within a range of ids, newest first.",
            Data(|c, a| xrange(c, a, true))
        ),
        row!(
            "xlen",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "stream",
            "Returns the number of entries of a stream.",
            Data(xlen)
        ),
        row!(
            "xdel",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "stream",
            "Deletes entries by id.",
            Data(xdel)
        ),
        row!(
            "xsetid",
            -3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "stream",
            "Sets a stream's last id and counters.",
            Data(xsetid)
        ),
    ]
}

/// `[id, [field, value, ...]]`.
pub fn entry_reply(e: &Entry) -> Reply {
    let mut fv = Vec::with_capacity(e.1.len() * 2);
    for (f, v) in &e.1 {
        fv.push(Reply::bulk(f));
        fv.push(Reply::bulk(v));
    }
    Reply::Array(vec![Reply::Bulk(e.0.to_bytes()), Reply::Array(fv)])
}

/// Entries as an array.
pub fn entries_reply(es: &[Entry]) -> Reply {
    Reply::Array(es.iter().map(entry_reply).collect())
}

/// The id argument of XADD.
enum IdArg {
    Auto,
    /// `ms-*`.
    Seq(u64),
    Exact(StreamId),
}

/// Parsed XADD/XTRIM options (Redis' `streamParseAddOrTrimArgsOrReply`).
struct AddTrim {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    /// Index of the trim threshold in the arguments.
    trim_at: usize,
    nomkstream: bool,
    id: IdArg,
    /// Index of the id (XADD).
    id_at: usize,
}

fn parse_add_trim(
    argv: &[Bytes],
    xadd: bool,
    obey: bool,
    nodes: NodeLimits,
) -> Result<AddTrim, CmdError> {
    let conflict = || {
        CmdError::msg(
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
        )
    };
    let mut o = AddTrim {
        trim: None,
        approx: false,
        limit: 0,
        trim_at: 0,
        nomkstream: false,
        id: IdArg::Auto,
        id_at: argv.len(),
    };
    let mut limit_given = false;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = &argv[i][..];
        if xadd && opt == b"*" {
            o.id_at = i;
            break;
        } else if (opt.eq_ignore_ascii_case(b"maxlen") || opt.eq_ignore_ascii_case(b"minid"))
            && more > 0
        {
            if o.trim.is_some() {
                return Err(conflict());
            }
            o.approx = false;
            let next = &argv[i + 1][..];
            if more >= 2 && next == b"~" {
                o.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let v = &argv[i + 1];
            o.trim = Some(if opt.eq_ignore_ascii_case(b"maxlen") {
                let n = vigil_resp::args::parse_int(v)?;
                if n < 0 {
                    return Err(CmdError::msg("ERR The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(StreamId::parse_strict(v)?)
            });
            i += 1;
            o.trim_at = i;
        } else if opt.eq_ignore_ascii_case(b"limit") && more > 0 {
            let n = vigil_resp::args::parse_int(&argv[i + 1])?;
            if n < 0 {
                return Err(CmdError::msg("ERR The LIMIT argument must be >= 0."));
            }
            o.limit = n as u64;
            limit_given = true;
            i += 1;
        } else if xadd && opt.eq_ignore_ascii_case(b"nomkstream") {
            o.nomkstream = true;
        } else if xadd {
            let (id, seq_given) = StreamId::parse_full(opt, true, 0, true)?;
            o.id = if seq_given {
                IdArg::Exact(id)
            } else {
                IdArg::Seq(id.ms)
            };
            o.id_at = i;
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if o.limit > 0 && o.trim.is_none() {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && o.trim.is_none() {
        return Err(CmdError::msg(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if obey {
        // From the log or a master: the threshold was rewritten to be exact.
        o.limit = 0;
    } else if limit_given {
        if !o.approx {
            return Err(CmdError::msg(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if o.approx {
        o.limit = nodes.default_trim_limit();
    }
    Ok(o)
}

/// Rewrites an approximate trim as the exact one that gives the same result.
fn rewrite_trim(argv: &mut [Bytes], o: &AddTrim, s: &Stream) {
    if !o.approx {
        return;
    }
    argv[o.trim_at - 1] = Bytes::from_static(b"=");
    argv[o.trim_at] = match o.trim {
        Some(Trim::MaxLen(_)) => int_arg(s.length as i64),
        _ => s.edge(false).unwrap_or(StreamId::MIN).to_bytes(),
    };
}

fn xadd(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let mut argv = args.all().to_vec();
    let nodes = ctx.store.thresholds.stream_nodes();
    let o = parse_add_trim(&argv, true, ctx.loading, nodes)?;
    let fields = argv.len().saturating_sub(o.id_at + 1);
    if fields < 2 || fields % 2 == 1 {
        return Err(CmdError::Arity("xadd".into()));
    }
    if let IdArg::Exact(StreamId::MIN) = o.id {
        return Err(CmdError::msg(
            "ERR The ID specified in XADD must be greater than 0-0",
        ));
    }
    let key = argv[1].clone();
    let now = ctx.now;
    let s = if o.nomkstream {
        match ctx.get_stream(&key)? {
            Some(s) => s,
            None => return Ok(Reply::Nil),
        }
    } else {
        ctx.stream_or_new(&key)?
    };
    if s.last_id == StreamId::MAX {
        return Err(CmdError::msg(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let pairs = &argv[o.id_at + 1..];
    let too_small = || {
        CmdError::msg(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        )
    };
    let total: u64 = pairs.iter().map(|p| p.len() as u64).sum();
    let id = if total > ENTRY_MAX_BYTES {
        None
    } else {
        Some(match o.id {
            IdArg::Auto => s.next_id(now).ok_or_else(too_small)?,
            // Redis 7.0 answers a sequence overflow with this (misleading) message.
            IdArg::Seq(ms) if ms == s.last_id.ms => s
                .last_id
                .incr()
                .filter(|i| i.ms == ms)
                .ok_or_else(|| CmdError::msg("ERR Elements are too large to be stored"))?,
            IdArg::Seq(ms) => StreamId { ms, seq: 0 },
            IdArg::Exact(id) => id,
        })
    };
    let Some(id) = id else {
        return Err(CmdError::msg("ERR Elements are too large to be stored"));
    };
    if id <= s.last_id {
        return Err(too_small());
    }
    s.append(id, pairs, nodes);
    let mut trimmed = 0;
    if let Some(how) = o.trim {
        trimmed = s.trim(how, o.approx, o.limit);
        rewrite_trim(&mut argv, &o, s);
    }
    ctx.notify(STREAM, "xadd", &key);
    if trimmed > 0 {
        ctx.notify(STREAM, "xtrim", &key);
    }
    if !matches!(o.id, IdArg::Exact(_)) {
        argv[o.id_at] = id.to_bytes();
    }
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.propagate(argv);
    Ok(Reply::Bulk(id.to_bytes()))
}

fn xtrim(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let mut argv = args.all().to_vec();
    let o = parse_add_trim(
        &argv,
        false,
        ctx.loading,
        ctx.store.thresholds.stream_nodes(),
    )?;
    let key = argv[1].clone();
    let Some(s) = ctx.get_stream(&key)? else {
        return Ok(Reply::Int(0));
    };
    let Some(how) = o.trim else {
        return Ok(Reply::Int(0));
    };
    let removed = s.trim(how, o.approx, o.limit);
    if removed > 0 {
        rewrite_trim(&mut argv, &o, s);
        ctx.db().touch(&key);
        ctx.changed(removed);
        ctx.propagate(argv);
        ctx.notify(STREAM, "xtrim", &key);
    }
    Ok(Reply::Int(removed as i64))
}

/// `COUNT n` after a range: `None` without it; negative counts as 0.
fn range_count(args: &mut Args) -> Result<Option<usize>, CmdError> {
    let mut count = None;
    while let Some(opt) = args.next() {
        if opt.eq_ignore_ascii_case(b"count") && !args.is_empty() {
            count = Some(args.i64()?.max(0) as usize);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(count)
}

fn xrange(ctx: &mut Ctx, args: &mut Args, rev: bool) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let a = args.bytes()?;
    let b = args.bytes()?;
    let (start, end) = if rev { (b, a) } else { (a, b) };
    let start = StreamId::parse_interval(&start, true)?;
    let end = StreamId::parse_interval(&end, false)?;
    let count = range_count(args)?;
    let Some(s) = ctx.get_stream(&key)? else {
        return Ok(Reply::Array(vec![]));
    };
    if count == Some(0) {
        return Ok(Reply::NilArray);
    }
    Ok(entries_reply(&s.range(start, end, rev, count.unwrap_or(0))))
}

fn xlen(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Int(
        ctx.get_stream(&key)?.map_or(0, |s| s.length as i64),
    ))
}

fn xdel(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let ids = args.rest();
    if ctx.get_stream(&key)?.is_none() {
        return Ok(Reply::Int(0));
    }
    let ids = ids
        .iter()
        .map(|b| StreamId::parse_strict(b))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(s) = ctx.get_stream(&key)? else {
        return Ok(Reply::Int(0));
    };
    let mut deleted = 0;
    let mut first = false;
    for id in ids {
        if s.delete(id) {
            first |= id == s.first_id;
            if id > s.max_deleted {
                s.max_deleted = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.length == 0 {
            s.first_id = StreamId::MIN;
        } else if first {
            s.first_id = s.edge(false).unwrap_or(StreamId::MIN);
        }
        ctx.db().touch(&key);
        ctx.changed(deleted);
        ctx.notify(STREAM, "xdel", &key);
    }
    Ok(Reply::Int(deleted as i64))
}

fn xsetid(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let id = StreamId::parse_strict(&args.bytes()?)?;
    let mut added: Option<u64> = None;
    let mut max_del = StreamId::MIN;
    while let Some(opt) = args.next() {
        if opt.eq_ignore_ascii_case(b"entriesadded") && !args.is_empty() {
            let n = args.i64()?;
            if n < 0 {
                return Err(CmdError::msg("ERR entries_added must be positive"));
            }
            added = Some(n as u64);
        } else if opt.eq_ignore_ascii_case(b"maxdeletedid") && !args.is_empty() {
            max_del = StreamId::parse_strict(&args.bytes()?)?;
            if id < max_del {
                return Err(CmdError::msg(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(s) = ctx.get_stream(&key)? else {
        return Err(CmdError::NoSuchKey);
    };
    if s.length > 0 {
        if s.edge(true).is_some_and(|top| id < top) {
            return Err(CmdError::msg(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if added.is_some_and(|a| s.length > a) {
            return Err(CmdError::msg(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    s.last_id = id;
    if let Some(a) = added {
        s.entries_added = a;
    }
    if max_del != StreamId::MIN {
        s.max_deleted = max_del;
    }
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.notify(STREAM, "xsetid", &key);
    Ok(Reply::ok())
}

//! Engine tests: the sandbox, conversions, errors, kills, libraries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use vigil_resp::Reply;

use crate::{Engine, Host, Rand48};

/// A host whose commands answer their first argument back, or an error for `err`.
struct Echo;

impl Host for Echo {
    fn call(&mut self, args: Vec<Bytes>, _resp3: bool) -> Reply {
        if &args[0][..] == b"err" {
            return Reply::error("ERR boom");
        }
        Reply::Bulk(args[args.len() - 1].clone())
    }
    fn acl_check(&self, args: &[Bytes]) -> Option<bool> {
        (&args[0][..] == b"get").then_some(args.len() == 2)
    }
}

fn eval(e: &mut Engine, body: &str) -> Reply {
    let sha = match e.load_script(body.as_bytes()) {
        Ok(s) => s,
        Err(m) => return Reply::Error(m.into()),
    };
    e.run_script(&sha, &[Bytes::from("k")], &[Bytes::from("a")], &mut Echo)
        .unwrap()
}

fn engine() -> Engine {
    Engine::new(Arc::new(Rand48::default())).unwrap()
}

#[test]
fn conversions_and_errors() {
    let mut e = engine();
    let cases: &[(&str, Reply)] = &[
        ("return 1", Reply::Int(1)),
        ("return 3.9", Reply::Int(3)),
        ("return 'x'", Reply::Bulk(Bytes::from("x"))),
        ("return true", Reply::Int(1)),
        ("return false", Reply::Nil),
        ("return nil", Reply::Nil),
        ("return {ok='fine'}", Reply::simple("fine")),
        ("return {err='bad'}", Reply::error("bad")),
        (
            "return {1, 'a', nil, 3}",
            Reply::Array(vec![Reply::Int(1), Reply::Bulk(Bytes::from("a"))]),
        ),
        ("return KEYS[1] .. ARGV[1]", Reply::Bulk(Bytes::from("ka"))),
        (
            "return redis.call('get', 'v')",
            Reply::Bulk(Bytes::from("v")),
        ),
        ("return redis.pcall('err')", Reply::error("ERR boom")),
        (
            "return redis.call('err')",
            Reply::error("ERR boom script: SHA, on @user_script:1."),
        ),
        (
            "return x",
            Reply::error(
                "ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: SHA, on @user_script:1.",
            ),
        ),
        (
            "y = 1",
            Reply::error(
                "ERR user_script:1: Attempt to modify a readonly table script: SHA, on @user_script:1.",
            ),
        ),
        ("return redis.error_reply('MY err')", Reply::error("MY err")),
        ("return redis.acl_check_cmd('get', 'k')", Reply::Int(1)),
        ("return redis.acl_check_cmd('get')", Reply::Nil),
        (
            "return type(rawget(_G, 'loadfile'))",
            Reply::Bulk(Bytes::from("nil")),
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let sha = crate::sha1_hex(body.as_bytes());
        let want = match want {
            Reply::Error(m) => Reply::Error(m.replace("SHA", &sha).into()),
            w => w.clone(),
        };
        assert_eq!(eval(&mut e, body), want, "#{i} {body}");
    }
}

#[test]
fn a_script_is_killed_by_its_tick() {
    let mut e = engine();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    e.set_tick(Arc::new(move || t.fetch_add(1, Ordering::Relaxed) >= 3))
        .unwrap();
    let r = eval(&mut e, "local i = 0\nwhile true do i = i + 1 end");
    let Reply::Error(m) = r else { panic!("{r:?}") };
    assert!(
        m.starts_with("ERR Script killed by user with SCRIPT KILL... script: "),
        "{m}"
    );
    assert!(m.ends_with(", on @user_script:2."), "{m}");
    assert!(ticks.load(Ordering::Relaxed) >= 4);
}

#[test]
fn libraries_register_functions() {
    let mut e = engine();
    let (name, fns) = e
        .load_library(b"#!lua name=lib\nredis.register_function{function_name='f', callback=function(k, a) return a[1] end, flags={'no-writes'}}")
        .unwrap();
    assert_eq!(name, "lib");
    assert_eq!(fns[0].name, "f");
    assert!(fns[0].flags.no_writes);
    let r = e
        .run_function("f", &[], &[Bytes::from("z")], &mut Echo)
        .unwrap();
    assert_eq!(r, Reply::Bulk(Bytes::from("z")));
    assert_eq!(
        e.load_library(b"#!lua name=l2\nredis.call('x')")
            .unwrap_err(),
        "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"
    );
}

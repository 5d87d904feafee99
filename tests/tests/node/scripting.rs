//! Scripting end to end: EVAL, SCRIPT, FUNCTION and FCALL compared with `redis-server` byte
//! for byte (RESP2, then RESP3 with `redis.setresp(3)` cases); busy scripts (-BUSY, SCRIPT
//! KILL, UNKILLABLE, SHUTDOWN NOSAVE); a replica and a restarted node hold the master's data
//! written by scripts and its function libraries, and the log holds the effects, not EVAL.

use vigil_tests::diff::assert_matches_redis;
use vigil_tests::{NodeProc, RawConn};

const CONVERSIONS: &str = r##"
# Lua -> Redis
EVAL "return 1" 0
EVAL "return -7" 0
EVAL "return 3.99" 0
EVAL "return -3.99" 0
EVAL "return 1e20" 0
EVAL "return 0/0" 0
EVAL "redis.call('set', 'n', 9007199254740991) return redis.call('get', 'n')" 0
EVAL "redis.call('set', 'n', 0.1) return redis.call('get', 'n')" 0
EVAL "redis.call('set', 'n', 1e20) return redis.call('get', 'n')" 0
EVAL "redis.call('set', 'n', -1/3) return redis.call('get', 'n')" 0
EVAL "redis.call('set', 'n', 1/0) return redis.call('get', 'n')" 0
EVAL "return redis.call('incrbyfloat', 'm', 2.5)" 0
DEL n m
EVAL "return 'str'" 0
EVAL "return ''" 0
EVAL "return true" 0
EVAL "return false" 0
EVAL "return nil" 0
EVAL "return {}" 0
EVAL "return {1, 2, 3.7, 'x', nil, 5}" 0
EVAL "return {1, {2, {err='e'}}, {ok='ok'}, true, false}" 0
EVAL "return {ok='fine'}" 0
EVAL "return {ok='multi\nline'}" 0
EVAL "return {err='My Error'}" 0
EVAL "return {err='no code'}" 0
EVAL "return {err=5}" 0
EVAL "return {ok=5}" 0
EVAL "return {double=3.5}" 0
EVAL "return {double=3}" 0
EVAL "return {map={a=1}}" 0
EVAL "return {set={a=true}}" 0
EVAL "return {big_number='12345678901234567890'}" 0
EVAL "return {verbatim_string={format='txt', string='hello'}}" 0
EVAL "return redis.status_reply('FINE')" 0
EVAL "return redis.error_reply('My Error')" 0
EVAL "return redis.error_reply('-X')" 0
EVAL "return redis.error_reply('X')" 0
EVAL "return redis.error_reply('-WRONGTYPE bad kind')" 0
EVAL "return redis.sha1hex('')" 0
EVAL "return redis.sha1hex('abc')" 0
EVAL "return {KEYS[1], ARGV[1], #KEYS, #ARGV}" 1 k1 a1 a2
EVAL "return KEYS" 3 a b c
EVAL "return ARGV" 0 x "y z" ""
# Redis -> Lua
SET s hello
RPUSH l a b c
HSET h f 1
SADD st m
ZADD z 1.5 a
EVAL "return redis.call('get', 's')" 0
EVAL "return redis.call('get', 'nokey')" 0
EVAL "return type(redis.call('get', 'nokey'))" 0
EVAL "return redis.call('lrange', 'l', 0, -1)" 0
EVAL "return redis.call('hgetall', 'h')" 0
EVAL "return redis.call('smembers', 'st')" 0
EVAL "return redis.call('zscore', 'z', 'a')" 0
EVAL "return redis.call('zrange', 'z', 0, -1, 'withscores')" 0
EVAL "return redis.call('incr', 'n')" 0
EVAL "return redis.call('set', 'x', 'y')" 0
EVAL "return type(redis.call('set', 'x', 'y'))" 0
EVAL "return redis.call('set', 'x', 'y').ok" 0
EVAL "return redis.call('exists', 's', 'nokey')" 0
EVAL "return redis.call('type', 's')" 0
EVAL "return redis.call('ping')" 0
EVAL "return redis.call('ping', 'x')" 0
EVAL "return redis.call('echo', 'x')" 0
EVAL "return redis.call('lpop', 'nolist')" 0
EVAL "return redis.call('set', 'k', 12)" 0
EVAL "return redis.call('set', 'k', 1.5)" 0
EVAL "return redis.call('get', 'k')" 0
EVAL "return redis.call('set', 'k', 1e20)" 0
EVAL "return redis.call('get', 'k')" 0
# errors
EVAL "return redis.call('incr', 's')" 0
EVAL "local a = redis.call('incr', 's')" 0
EVAL "return redis.pcall('incr', 's')" 0
EVAL "local e = redis.pcall('incr', 's'); return e.err" 0
EVAL "return redis.call('lpush', 's', 'x')" 0
EVAL "return redis.call('nosuch')" 0
EVAL "return redis.call('incr', 'a', 'b')" 0
EVAL "return redis.call()" 0
EVAL "return redis.call({})" 0
EVAL "return redis.call('get', nil)" 0
EVAL "return redis.call('multi')" 0
EVAL "return redis.call('eval', 'return 1', 0)" 0
EVAL "return redis.call('blpop', 'nol', 0)" 0
EVAL "return redis.pcall('bzpopmin', 'noz', 0)" 0
EVAL "return redis.call('xread', 'block', '0', 'streams', 'nos', '0')" 0
EVAL "return redis.pcall('xreadgroup', 'group', 'g', 'c', 'block', '0', 'streams', 'nos', '>')" 0
EVAL "redis.call('xadd', 'sx', '1-1', 'f', 'v') return redis.call('xread', 'count', '5', 'streams', 'sx', '0')" 1 sx
EVAL "return redis.call('subscribe', 'c')" 0
EVAL "error('x')" 0
EVAL "error({err='MY x'})" 0
EVAL "error({err='MY x'}, 0)" 0
EVAL "local t = nil; return t.x" 0
EVAL "return 'a' .. " 0
EVAL "return 1 +" 0
EVAL "\nreturn x" 0
EVAL "return pcall(function() error('inner') end)" 0
EVAL "local ok, e = pcall(function() error('inner') end); return e" 0
EVAL "redis.setresp(4)" 0
EVAL "redis.setresp()" 0
EVAL "return redis.log(redis.LOG_WARNING, 'from', 'script')" 0
EVAL "return redis.log('x', 'y')" 0
EVAL "return redis.log(9, 'y')" 0
EVAL "return redis.log(1)" 0
EVAL "return 1" -1
EVAL "return 1" 2 a
EVAL "return 1" x
EVAL "return 1"
# globals and sandbox
EVAL "x = 1" 0
EVAL "return x" 0
EVAL "return _G.nope" 0
EVAL "local ok, e = pcall(function() y = 1 end); return e" 0
EVAL "return rawget(_G, 'loadfile')" 0
EVAL "return type(rawget(_G, 'dofile'))" 0
EVAL "return type(rawget(_G, 'print'))" 0
EVAL "return type(rawget(_G, 'os'))" 0
EVAL "return type(rawget(_G, 'io'))" 0
EVAL "return type(rawget(_G, 'debug'))" 0
EVAL "return type(rawget(_G, 'setfenv'))" 0
EVAL "return type(rawget(_G, 'require'))" 0
EVAL "return {type(string), type(math), type(table), type(coroutine), type(loadstring), type(load), type(unpack), type(gcinfo)}" 0
EVAL "return string.format('%d-%s-%5.2f', 5, 'x', 3.14159)" 0
EVAL "return table.concat({1, 2, 3}, ',')" 0
EVAL "return tostring(math.random())" 0
EVAL "return math.random(100)" 0
EVAL "return math.random(5, 10)" 0
EVAL "return {math.random(), math.random(10)}" 0
EVAL "math.randomseed(42); return tostring(math.random())" 0
EVAL "return redis.REDIS_VERSION" 0
EVAL "return redis.REDIS_VERSION_NUM" 0
EVAL "return redis.replicate_commands()" 0
EVAL "return redis.set_repl(redis.REPL_ALL)" 0
EVAL "return redis.set_repl(42)" 0
EVAL "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}" 0
EVAL "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}" 0
EVAL "return redis.breakpoint()" 0
EVAL "return redis.acl_check_cmd('get')" 0
EVAL "return redis.acl_check_cmd('nosuch')" 0
EVAL "return redis.nope" 0
EVAL "redis.call = 1" 0
# SELECT inside scripts: the script's own database
EVAL "return redis.call('select', 1)" 0
EVAL "redis.call('select', 2); return redis.call('set', 'dbk', 'v')" 0
GET dbk
SELECT 2
GET dbk
SELECT 0
EVAL "return redis.call('select', 99)" 0
EVAL "return redis.call('select', 'x')" 0
# EVALSHA and the script cache
EVALSHA ffffffffffffffffffffffffffffffffffffffff 0
EVALSHA 0123 0
SCRIPT LOAD "return 'loaded'"
EVALSHA 2c0fb4d5cd2a1f5bea1ad1dd3dc4b0beb31a6dd2 0
EVALSHA 2C0FB4D5CD2A1F5BEA1AD1DD3DC4B0BEB31A6DD2 0
EVALSHA_RO 2c0fb4d5cd2a1f5bea1ad1dd3dc4b0beb31a6dd2 0
SCRIPT EXISTS 2c0fb4d5cd2a1f5bea1ad1dd3dc4b0beb31a6dd2 ffffffffffffffffffffffffffffffffffffffff
SCRIPT LOAD "return +"
SCRIPT LOAD
SCRIPT FLUSH
SCRIPT EXISTS 2c0fb4d5cd2a1f5bea1ad1dd3dc4b0beb31a6dd2
EVALSHA 2c0fb4d5cd2a1f5bea1ad1dd3dc4b0beb31a6dd2 0
SCRIPT FLUSH ASYNC
SCRIPT FLUSH SYNC
SCRIPT FLUSH bad
SCRIPT KILL
SCRIPT NOPE
SCRIPT HELP
EVAL "return 'cached by eval'" 0
SCRIPT EXISTS b2ad4c6a9a5ed8b4bc5a0ac6a1e2e0a5d60bb5a8
# read-only scripts and shebang flags
EVAL_RO "return redis.call('get', 's')" 0
EVAL_RO "return redis.call('set', 'k', 'v')" 0
EVAL "#!lua\nreturn 1" 0
EVAL "#!lua flags=no-writes\nreturn redis.call('set', 'a', 'b')" 0
EVAL "#!lua flags=no-writes,allow-stale\nreturn x" 0
EVAL "#!lua flags=no-writes,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nreturn redis.call('get', 's')" 0
EVAL "#!lua flags=\nreturn 2" 0
EVAL "#!lua flags=bad\nreturn 1" 0
EVAL "#!js\nreturn 1" 0
EVAL "#!lua foo=bar\nreturn 1" 0
EVAL "#!lua" 0
EVAL_RO "#!lua\nreturn 1" 0
EVAL_RO "#!lua flags=no-writes\nreturn 1" 0
EVAL_RO "return 1" 0
EVAL "return redis.call('set', 'k', 'v')" 0
# inside a transaction
MULTI
EVAL "return redis.call('incr', 'mc')" 0
EVAL "return x" 0
EVALSHA ffffffffffffffffffffffffffffffffffffffff 0
EXEC
GET mc
"##;

const FUNCTIONS: &str = r##"
FUNCTION LIST
FUNCTION LOAD "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)"
FUNCTION LOAD "#!lua name=rolib\nredis.register_function{function_name='ro', callback=function(keys, args) return x end, flags={'no-writes'}, description='d'}"
FCALL myfunc 0 hello
FCALL ro 0
FCALL_RO myfunc 0 a
FUNCTION LIST WITHCODE LIBRARYNAME mylib
FUNCTION LIST LIBRARYNAME rolib
FUNCTION LIST LIBRARYNAME nomatch
~FUNCTION LIST
FUNCTION LOAD "#!lua name=mylib\nreturn 1"
FUNCTION LOAD "#!lua name=l2\nredis.call('ping')"
FUNCTION LOAD "#!lua name=l3\nx = 1"
FUNCTION LOAD "#!lua name=l4\nlocal a = y"
FUNCTION LOAD "#!lua name=l5\nredis.register_function('f', function() end, 5)"
FUNCTION LOAD "#!lua name=l6\nredis.register_function{function_name='f', callback=function() end, flags={'bad'}}"
FUNCTION LOAD "#!lua"
FUNCTION LOAD "no shebang"
FUNCTION LOAD "#!lua name=l7\nredis.register_function('myfunc', function() end)"
FUNCTION LOAD "#!lua name=l8\nlocal x = ("
FUNCTION LOAD "#!lua name=\"q1\"\nredis.register_function('q1', function() return 1 end)"
FUNCTION LOAD "#!lua NAME=q2\nredis.register_function('q2', function() return 1 end)"
FUNCTION LOAD "#!lua name=\"q3\nreturn 1"
FUNCTION LOAD "#!lua  name=q4 \r\nredis.register_function('q4', function() return 1 end)"
EVAL "#!lua flags=no-writes,\nreturn 1" 0
EVAL "#!lua flags=\nreturn 1" 0
EVAL "#!lua flags=\"no-writes\"\nreturn 1" 0
EVAL "#!lua \"flags=no-writes\nreturn 1" 0
FCALL q1 0
FUNCTION LOAD "#!lua\n"
FUNCTION LOAD "#!lua name=x foo=bar\n"
FUNCTION LOAD "#!js name=x\n"
FUNCTION LOAD "#!lua name=l9\n"
FUNCTION LOAD "#!lua name=l9 name=l10\nreturn 1"
FUNCTION LOAD "#!lua name=l10\nredis.register_function('f-x', function() end)"
FUNCTION LOAD "#!lua name=l-10\nredis.register_function('fx', function() end)"
FUNCTION LOAD "#!lua name=l11\nredis.register_function{function_name='f11', callback=function() end, foo=1}"
FUNCTION LOAD "#!lua name=l12\nredis.register_function('f12', 'notfn')"
FUNCTION LOAD "#!lua name=l13\nreturn redis.setresp"
FUNCTION LOAD "#!lua name=l14\nredis.register_function('f14', function() end)\nredis.register_function('f14', function() end)"
FUNCTION LOAD "#!lua name=l15\nredis.register_function{callback=function() end}"
FUNCTION LOAD "#!lua name=l16\nredis.register_function{function_name='x'}"
FUNCTION LOAD "#!lua name=l17\nredis.register_function('x')"
FUNCTION LOAD REPLACE "#!lua name=mylib\nredis.register_function('myfunc2', function(keys, args) return 2 end)"
FCALL myfunc 0 a
FCALL myfunc2 0 a
FUNCTION LOAD bad "#!lua name=mylib\nreturn 1"
FUNCTION LOAD "#!lua name=kv\nredis.register_function('setkv', function(k, a) return redis.call('set', k[1], a[1]) end)"
FUNCTION LOAD "#!lua name=kvro\nredis.register_function{function_name='getkv', callback=function(k, a) return redis.call('get', k[1]) end, flags={'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}}"
FCALL setkv 1 fk fv
FCALL_RO getkv 1 fk
FCALL getkv 1 fk
FCALL_RO setkv 1 fk x
FUNCTION LOAD "#!lua name=rw\nredis.register_function{function_name='rw', callback=function(k, a) return redis.call('set', 'q', 1) end, flags={'no-writes'}}"
FCALL rw 0
FCALL nosuch 0
FCALL myfunc2 -1
FCALL myfunc2 5
FCALL myfunc2 x
FUNCTION STATS
FUNCTION DELETE nosuch
FUNCTION DELETE rw
FCALL rw 0
FUNCTION RESTORE garbage
FUNCTION RESTORE garbage BADPOLICY
FUNCTION KILL
FUNCTION HELP
FUNCTION NOPE
FUNCTION LIST BAD
FUNCTION LIST LIBRARYNAME
FUNCTION FLUSH bad
FUNCTION FLUSH
FUNCTION LIST
FUNCTION STATS
FCALL myfunc2 0
"##;

const RESP3: &str = r##"
!HELLO 3
SET s hello
HSET h a 1 b 2
SADD st m
ZADD z 1.5 a
EVAL "return redis.call('hgetall', 'h')" 0
EVAL "return redis.call('smembers', 'st')" 0
EVAL "return redis.call('zscore', 'z', 'a')" 0
EVAL "return redis.call('get', 'nokey')" 0
EVAL "return true" 0
EVAL "return false" 0
EVAL "return {double=3.5}" 0
EVAL "return {map={a=1}}" 0
EVAL "return {set={a=true}}" 0
EVAL "return {big_number='123'}" 0
EVAL "return {verbatim_string={format='txt', string='hello'}}" 0
EVAL "redis.setresp(3); return redis.call('hgetall', 'h')" 0
EVAL "redis.setresp(3); return redis.call('hgetall', 'h').map.a" 0
EVAL "redis.setresp(3); return redis.call('smembers', 'st')" 0
EVAL "redis.setresp(3); return type(redis.call('smembers', 'st').set)" 0
EVAL "redis.setresp(3); return redis.call('zscore', 'z', 'a')" 0
EVAL "redis.setresp(3); return redis.call('zscore', 'z', 'a').double" 0
EVAL "redis.setresp(3); return redis.call('get', 'nokey')" 0
EVAL "redis.setresp(3); return type(redis.call('get', 'nokey'))" 0
EVAL "redis.setresp(3); return true" 0
EVAL "redis.setresp(3); return false" 0
EVAL "redis.setresp(3); return {double=3.5}" 0
EVAL "redis.setresp(3); return redis.call('hrandfield', 'nohash', 1, 'withvalues')" 0
EVAL "redis.setresp(3); return redis.call('zrange', 'z', 0, -1, 'withscores')" 0
EVAL "return redis.call('zrange', 'z', 0, -1, 'withscores')" 0
EVAL "return redis.call('incr', 's')" 0
EVAL "return {err='x'}" 0
EVAL "return x" 0
FUNCTION LOAD "#!lua name=r3\nredis.register_function('r3', function(k, a) redis.setresp(3); return redis.call('hgetall', 'h') end)"
FCALL r3 0
FUNCTION LIST
FUNCTION STATS
FUNCTION FLUSH
"##;

#[test]
fn eval_matches_redis_server() {
    assert_matches_redis(CONVERSIONS);
}

#[test]
fn functions_match_redis_server() {
    assert_matches_redis(FUNCTIONS);
}

#[test]
fn resp3_scripts_match_redis_server() {
    assert_matches_redis(RESP3);
}

/// Polls `port` with PING until it answers `-BUSY`; returns the error line.
fn wait_busy(port: u16) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut c = RawConn::connect(port).unwrap();
        let r = String::from_utf8_lossy(&c.call(&["PING"])).into_owned();
        if r.starts_with("-BUSY") {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "never busy: {r}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A script past `busy-reply-threshold`: others get -BUSY at once; SCRIPT KILL stops one that
/// has not written; one that wrote is UNKILLABLE and only SHUTDOWN NOSAVE ends it — its writes
/// are lost, as its effects would only have been logged at its end.
#[test]
fn busy_scripts_kill_unkillable_and_shutdown_nosave() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut node = NodeProc::start(&data, &["--appendfsync", "always"]);
    let mut admin = RawConn::connect(node.port).unwrap();
    assert_eq!(
        admin.call(&["CONFIG", "SET", "busy-reply-threshold", "100"]),
        b"+OK\r\n"
    );
    assert_eq!(
        admin.call(&["SCRIPT", "KILL"]),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );

    let port = node.port;
    let looping = std::thread::spawn(move || {
        let mut c = RawConn::connect(port).unwrap();
        c.call(&["EVAL", "local i = 0\nwhile true do i = i + 1 end", "0"])
    });
    assert_eq!(
        wait_busy(port),
        "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    let mut c = RawConn::connect(port).unwrap();
    assert!(String::from_utf8_lossy(&c.call(&["GET", "k"])).starts_with("-BUSY"));
    assert_eq!(c.call(&["SCRIPT", "KILL"]), b"+OK\r\n");
    let killed = String::from_utf8_lossy(&looping.join().unwrap()).into_owned();
    assert!(
        killed.starts_with("-ERR Script killed by user with SCRIPT KILL... script: ")
            && killed.ends_with(", on @user_script:2.\r\n"),
        "{killed}"
    );
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");

    let writer = std::thread::spawn(move || {
        let mut c = RawConn::connect(port).unwrap();
        c.call(&[
            "EVAL",
            "redis.call('set', 'w', '1')\nwhile true do end",
            "0",
        ])
    });
    wait_busy(port);
    let mut c = RawConn::connect(port).unwrap();
    assert!(
        String::from_utf8_lossy(&c.call(&["SCRIPT", "KILL"])).starts_with(
            "-UNKILLABLE Sorry the script already executed write commands against the dataset."
        ),
    );
    // Redis checks for writes before the kind: FUNCTION KILL of a script that wrote is
    // UNKILLABLE too (redis-server 7.0.15 answers so).
    assert!(String::from_utf8_lossy(&c.call(&["FUNCTION", "KILL"])).starts_with("-UNKILLABLE"));
    c.send_raw(&RawConn::encode(&["SHUTDOWN", "NOSAVE"]))
        .unwrap();
    assert!(c.is_closed(), "SHUTDOWN NOSAVE closes the connection");
    let status = node.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = writer.join();

    let node = NodeProc::start(&data, &[]);
    let mut c = RawConn::connect(node.port).unwrap();
    assert_eq!(
        c.call(&["GET", "w"]),
        b"$-1\r\n",
        "a killed script's writes are lost"
    );
}

fn offset(n: &NodeProc) -> u64 {
    n.info_field("master_repl_offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}

fn caught_up(master: &NodeProc, replica: &NodeProc) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while offset(master) != offset(replica)
        || replica.info_field("master_link_status").as_deref() != Some("up")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "replica behind; its log:\n{}",
            replica.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The libraries and the data as clients see them: FUNCTION LIST WITHCODE and every key.
fn state(n: &NodeProc) -> (Vec<u8>, Vec<String>) {
    let mut c = RawConn::connect(n.port).unwrap();
    let libs = c.call(&["FUNCTION", "LIST", "WITHCODE"]);
    (libs, vigil_tests::dump_dataset(&mut n.client(), 3))
}

const LIB: &str = "#!lua name=counters\nredis.register_function('bump', function(keys, args) redis.call('incrby', keys[1], args[1]); redis.call('rpush', keys[2], args[1]); return redis.call('get', keys[1]) end)\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

/// Writes through scripts and functions, a library loaded, replaced, deleted and restored: a
/// replica and the master restarted after SIGKILL hold exactly the same data and libraries,
/// and the log holds the scripts' effects (MULTI/EXEC), never EVAL.
#[test]
fn replica_and_restart_hold_what_scripts_wrote_and_the_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let mdir = dir.path().join("m");
    let mut master = NodeProc::start(&mdir, &["--appendfsync", "always"]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    replica.wait_info("master_link_status", |s| s == "up", "link");
    let mut c = RawConn::connect(master.port).unwrap();
    assert_eq!(c.call(&["FUNCTION", "LOAD", LIB]), b"$8\r\ncounters\r\n");
    let other = "#!lua name=gone\nredis.register_function('g', function() return 1 end)";
    assert_eq!(c.call(&["FUNCTION", "LOAD", other]), b"$4\r\ngone\r\n");
    assert_eq!(c.call(&["FUNCTION", "DELETE", "gone"]), b"+OK\r\n");
    for i in 0..20 {
        let n = i.to_string();
        assert_eq!(
            c.call(&["FCALL", "bump", "2", "cnt", "hist", &n]).first(),
            Some(&b'$')
        );
        c.call(&[
            "EVAL",
            "redis.call('set', KEYS[1], ARGV[1]); redis.call('select', 1); redis.call('hset', 'h', KEYS[1], ARGV[1]); return redis.call('expire', KEYS[1], 1000)",
            "1",
            &format!("k{i}"),
            &n,
        ]);
    }
    // A script that writes nothing propagates nothing; a read-only one neither.
    let before = offset(&master);
    c.call(&["EVAL", "return redis.call('get', 'cnt')", "0"]);
    c.call(&["FCALL_RO", "peek", "1", "cnt"]);
    c.call(&["EVAL", "return redis.call('get', 'nosuch')", "0"]);
    assert_eq!(
        offset(&master),
        before,
        "read-only scripts propagated something"
    );
    // One write: not wrapped.
    c.call(&["EVAL", "return redis.call('set', 'single', '1')", "0"]);
    // DUMP / RESTORE round trip on the same server.
    let dump = c.call(&["FUNCTION", "DUMP"]);
    let payload = &dump[dump.iter().position(|&b| b == b'\n').unwrap() + 1..dump.len() - 2];
    let libs_before = c.call(&["FUNCTION", "LIST", "WITHCODE"]);
    assert_eq!(c.call(&["FUNCTION", "FLUSH"]), b"+OK\r\n");
    assert_eq!(c.call(&["FUNCTION", "LIST"]), b"*0\r\n");
    assert_eq!(
        c.call_bytes(&[b"FUNCTION", b"RESTORE", payload]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&["FUNCTION", "LIST", "WITHCODE"]), libs_before);
    assert!(
        String::from_utf8_lossy(&c.call_bytes(&[b"FUNCTION", b"RESTORE", payload]))
            .starts_with("-ERR Library counters already exists")
    );
    let mut bad = payload.to_vec();
    bad[7] ^= 1;
    assert_eq!(
        c.call_bytes(&[b"FUNCTION", b"RESTORE", &bad]),
        b"-ERR DUMP payload version or checksum are wrong\r\n"
    );
    assert_eq!(
        c.call_bytes(&[b"FUNCTION", b"RESTORE", payload, b"REPLACE"]),
        b"+OK\r\n"
    );
    // A snapshot in the middle: the restart reads the libraries from it and the rest from
    // the log.
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    c.call(&["FCALL", "bump", "2", "cnt", "hist", "100"]);

    caught_up(&master, &replica);
    let want = state(&master);
    assert!(
        want.0.starts_with(b"*1\r\n"),
        "{}",
        String::from_utf8_lossy(&want.0)
    );
    assert_eq!(state(&replica), want, "replica");
    let mut rc = RawConn::connect(replica.port).unwrap();
    assert_eq!(rc.call(&["FCALL_RO", "peek", "1", "cnt"]), b"$3\r\n290\r\n");
    // The gate checks a script once, as one write (or one read when read-only). A script
    // without a shebang is checked at its first write, as Redis 7.0 runs it on a replica until
    // it writes.
    assert_eq!(
        rc.call(&["EVAL", "return redis.call('get', 'cnt')", "0"]),
        b"$3\r\n290\r\n"
    );
    let r = rc.call(&["EVAL", "redis.call('set', 'x', '1') return 1", "0"]);
    let r = String::from_utf8_lossy(&r).into_owned();
    assert!(
        r.starts_with("-READONLY You can't write against a read only replica. script: "),
        "{r}"
    );
    for write in [
        vec!["EVAL", "#!lua\nreturn 1", "0"],
        vec!["FCALL", "bump", "2", "cnt", "hist", "1"],
        vec!["FUNCTION", "DELETE", "counters"],
    ] {
        let r = String::from_utf8_lossy(&rc.call(&write)).into_owned();
        assert!(r.starts_with("-READONLY"), "{write:?} on a replica: {r}");
    }
    assert_eq!(
        rc.call(&["EVAL_RO", "return redis.call('get', 'cnt')", "0"]),
        b"$3\r\n290\r\n"
    );
    assert_eq!(
        rc.call(&[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get', 'cnt')",
            "0"
        ]),
        b"$3\r\n290\r\n"
    );

    let log: Vec<u8> = std::fs::read_dir(&mdir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "aof"))
        .flat_map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    let text = String::from_utf8_lossy(&log).to_lowercase();
    assert!(
        !text.contains("\r\neval\r\n") && !text.contains("\r\nfcall\r\n"),
        "scripts in the log"
    );
    assert!(
        text.contains("\r\nmulti\r\n") && text.contains("\r\nincrby\r\n"),
        "effects missing"
    );

    master.kill9();
    let master = NodeProc::start(&mdir, &[]);
    assert_eq!(state(&master), want, "restarted master");
    let mut c = RawConn::connect(master.port).unwrap();
    assert_eq!(
        c.call(&["FCALL", "bump", "2", "cnt", "hist", "1"]),
        b"$3\r\n291\r\n"
    );
}

/// The lead's script for the embedded libraries (cjson, cmsgpack, bit, struct), now through
/// EVAL on a real node.
#[test]
fn lua_libraries_match_redis_server() {
    assert_matches_redis(include_str!("../../diff/lua_libs.txt"));
}

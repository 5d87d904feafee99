//! `CLIENT PAUSE` / `UNPAUSE`, `CLIENT UNBLOCK` and `CLIENT REPLY`, compared with redis-server
//! across several connections: held commands answer only after the pause, in order; reads go
//! on under a WRITE pause; a blocked client is answered as on timeout or with an error.

use vigil_tests::sessions::assert_sessions_match;

#[test]
fn pause_holds_writes_or_everything_until_unpaused() {
    assert_sessions_match(
        r#"
        b: SET k 1
        p: CLIENT PAUSE 100000 WRITE
        a> SET k 2
        a!
        b: GET k
        c> INCR n
        c!
        p: CLIENT UNPAUSE
        a<
        c<
        b: GET k
        u: PING
        p: CLIENT PAUSE 2500
        a> GET k
        a!
        u> CLIENT UNPAUSE
        u!
        a<
        u<
        p: CLIENT PAUSE 100 ALL
        p: CLIENT PAUSE x
        p: CLIENT PAUSE -1
        p: CLIENT PAUSE 10 SOME
        p: CLIENT PAUSE
        p: CLIENT UNPAUSE now
        "#,
    );
}

#[test]
fn unblock_answers_a_blocked_client() {
    assert_sessions_match(
        r#"
        a> BLPOP q 0
        a!
        b: CLIENT UNBLOCK {id:a}
        a<
        b: CLIENT UNBLOCK {id:a}
        a> BRPOP q2 0
        a!
        b: CLIENT UNBLOCK {id:a} ERROR
        a<
        b: CLIENT UNBLOCK {id:a} MAYBE
        b: CLIENT UNBLOCK x
        b: CLIENT UNBLOCK 999999
        a: PING
        "#,
    );
}

#[test]
fn reply_off_and_skip_drop_replies() {
    assert_sessions_match(
        r#"
        a: CLIENT REPLY ON
        a> CLIENT REPLY OFF
        a> SET k 1
        a> GET k
        a: CLIENT REPLY ON
        a: GET k
        a> CLIENT REPLY SKIP
        a> SET k 2
        a: GET k
        a: CLIENT REPLY MAYBE
        a: CLIENT HELP
        a: CLIENT PAUSE
        "#,
    );
}

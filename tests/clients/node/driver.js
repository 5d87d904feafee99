// What the Node client scripts share: their arguments and the protocol tests/tests/clients.rs
// drives them by — write, read it through a replica, print READY, wait for a line on stdin
// (the test kills the master), write until acknowledged again, print
// `FAILOVER <ms> <old> <new>`. Any failure prints `FAIL <why>` and exits non-zero.
"use strict";
const readline = require("readline");

const args = process.argv.slice(2);

/** The sentinels given as the first argument (HOST:PORT[,HOST:PORT...]). */
const sentinels = args[0].split(",").map((hp) => {
  const i = hp.lastIndexOf(":");
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
});

/** `--protocol 2|3` (default 3). */
const protocol = Number(args[args.indexOf("--protocol") + 1] || 3);

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits (10 s at most) until `read()` returns `want`: the write reached a replica. */
async function untilReplicated(read, want) {
  const deadline = Date.now() + 10000;
  while ((await read().catch(() => null)) !== want) {
    if (Date.now() > deadline) fail("no replica served the write");
    await sleep(20);
  }
}

/** Prints READY and waits for the test's go (a line on stdin). */
async function readyThenWait() {
  console.log("READY");
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((r) => rl.once("line", r));
  rl.close();
}

/** Calls `write()` until it answers OK (20 s at most; errors while the client re-discovers
 * the master are expected); returns the milliseconds it took. */
async function untilWritten(write) {
  const start = Date.now();
  for (;;) {
    try {
      if ((await write()) === "OK") return Date.now() - start;
    } catch (e) {
      // Connection lost, READONLY, or no master yet: the client moves on its own.
    }
    if (Date.now() - start > 20000) fail("no new master within 20 s");
    await sleep(20);
  }
}

/** Checks that the master changed and prints the FAILOVER line. */
function reportFailover(ms, old, now) {
  if (now === old) fail(`still the old master ${old}`);
  console.log(`FAILOVER ${ms} ${old} ${now}`);
}

module.exports = { args, sentinels, protocol, fail, sleep, untilReplicated, readyThenWait, untilWritten, reportFailover };

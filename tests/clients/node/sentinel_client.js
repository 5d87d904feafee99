// ioredis against Vigil's sentinels, as an application would use it (driven by
// tests/tests/clients.rs).
//
// Usage: node sentinel_client.js HOST:PORT[,HOST:PORT...] --protocol 2|3 [--failover-detector]
//
// Connects through the sentinels, writes and reads (also through a replica connection), prints
// READY and waits for a line on stdin (the test kills the master), then keeps writing until a
// write is acknowledged again and prints `FAILOVER <ms> <old> <new>`. Any failure exits
// non-zero with the reason.
"use strict";
const Redis = require("ioredis");
const readline = require("readline");

const args = process.argv.slice(2);
const sentinels = args[0].split(",").map((hp) => {
  const i = hp.lastIndexOf(":");
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
});
const protocol = Number(args[args.indexOf("--protocol") + 1] || 3);
const failoverDetector = args.includes("--failover-detector");

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function options(role) {
  return {
    sentinels,
    name: "mymaster",
    role,
    protocol,
    failoverDetector,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    // ioredis' own reconnect back-off (retryStrategy, sentinelRetryStrategy) as applications
    // run it. (With a constant 20 ms the client sits in its sentinel-resolution loop without a
    // break, and ioredis 6's failoverDetector, when +switch-master arrives during that loop,
    // aborts it and ends the client for good — an ioredis race, the same with Redis Sentinel.)
  };
}

async function masterAddress() {
  const s = new Redis({ host: sentinels[0].host, port: sentinels[0].port, protocol });
  try {
    const [h, p] = await s.call("SENTINEL", "get-master-addr-by-name", "mymaster");
    return `${h}:${p}`;
  } finally {
    s.disconnect();
  }
}

async function main() {
  const master = new Redis(options("master"));
  const replica = new Redis(options("slave"));
  master.on("error", (e) => process.env.DEBUG && console.error("master error:", e.message));
  replica.on("error", () => {});
  const old = await masterAddress();
  if ((await master.set("js:k", "v1")) !== "OK") fail("SET not acknowledged");
  const deadline = Date.now() + 10000;
  while ((await replica.get("js:k").catch(() => null)) !== "v1") {
    if (Date.now() > deadline) fail("no replica served the write");
    await sleep(20);
  }
  const role = await replica.call("ROLE");
  if (role[0] !== "slave") fail(`the replica connection is to a ${role[0]}`);
  console.log("READY");
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((r) => rl.once("line", r));
  rl.close();
  const start = Date.now();
  for (;;) {
    try {
      if ((await master.set("js:k", "v2")) === "OK") break;
    } catch (e) {
      // Connection lost, READONLY, or no master yet: ioredis re-resolves through the sentinels.
    }
    if (Date.now() - start > 20000) fail("no new master within 20 s");
    await sleep(20);
  }
  const ms = Date.now() - start;
  const now = await masterAddress();
  if (now === old) fail(`still the old master ${old}`);
  if ((await master.get("js:k")) !== "v2") fail("the write is not readable on the new master");
  console.log(`FAILOVER ${ms} ${old} ${now}`);
  master.disconnect();
  replica.disconnect();
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));

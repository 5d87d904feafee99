// node-redis 6 (`createSentinel`) against Vigil's sentinels (driven by tests/tests/clients.rs).
//
// Usage: node node_redis_client.js HOST:PORT[,HOST:PORT...] --protocol 2|3
//
// Same protocol as sentinel_client.js: write, read through a replica, print READY, wait for a
// line on stdin (the test kills the master), write until acknowledged again, print
// `FAILOVER <ms> <old> <new>`. node-redis re-discovers the topology when it sees instance
// events (+sdown, +odown, +slave-reconf-done, ...) on the sentinels' pub/sub.
"use strict";
const { createSentinel, createClient } = require("redis");
const readline = require("readline");

const args = process.argv.slice(2);
const sentinels = args[0].split(",").map((hp) => {
  const i = hp.lastIndexOf(":");
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
});
const RESP = Number(args[args.indexOf("--protocol") + 1] || 3);

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function masterAddress() {
  const c = createClient({ socket: sentinels[0], RESP });
  c.on("error", () => {});
  await c.connect();
  try {
    const [h, p] = await c.sendCommand(["SENTINEL", "get-master-addr-by-name", "mymaster"]);
    return `${h}:${p}`;
  } finally {
    await c.close();
  }
}

async function main() {
  const sentinel = createSentinel({
    name: "mymaster",
    sentinelRootNodes: sentinels,
    replicaPoolSize: 1,
    nodeClientOptions: { RESP },
    sentinelClientOptions: { RESP },
  });
  sentinel.on("error", () => {});
  await sentinel.connect();
  const old = await masterAddress();
  if ((await sentinel.set("nr:k", "v1")) !== "OK") fail("SET not acknowledged");
  const deadline = Date.now() + 10000;
  // Read-only commands go to the replica pool.
  while ((await sentinel.get("nr:k").catch(() => null)) !== "v1") {
    if (Date.now() > deadline) fail("no replica served the write");
    await sleep(20);
  }
  console.log("READY");
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((r) => rl.once("line", r));
  rl.close();
  const start = Date.now();
  for (;;) {
    try {
      if ((await sentinel.set("nr:k", "v2")) === "OK") break;
    } catch (e) {
      // Not yet re-discovered: node-redis moves on its own when the sentinels say so.
    }
    if (Date.now() - start > 20000) fail("no new master within 20 s");
    await sleep(20);
  }
  const ms = Date.now() - start;
  const now = await masterAddress();
  if (now === old) fail(`still the old master ${old}`);
  console.log(`FAILOVER ${ms} ${old} ${now}`);
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));

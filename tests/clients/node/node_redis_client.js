// node-redis 6 (`createSentinel`) against Vigil's sentinels (driven by tests/tests/clients.rs).
//
// Usage: node node_redis_client.js HOST:PORT[,HOST:PORT...] --protocol 2|3
//
// The protocol of driver.js, shared with sentinel_client.js: write, read through a replica,
// print READY, wait for a line on stdin (the test kills the master), write until acknowledged
// again, print `FAILOVER <ms> <old> <new>`. node-redis re-discovers the topology when it sees
// instance events (+sdown, +odown, +slave-reconf-done, ...) on the sentinels' pub/sub.
"use strict";
const { createSentinel, createClient } = require("redis");
const driver = require("./driver");
const { sentinels, fail } = driver;
const RESP = driver.protocol;

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
  // Read-only commands go to the replica pool.
  await driver.untilReplicated(() => sentinel.get("nr:k"), "v1");
  await driver.readyThenWait();
  // node-redis moves on its own when the sentinels' events say so.
  const ms = await driver.untilWritten(() => sentinel.set("nr:k", "v2"));
  driver.reportFailover(ms, old, await masterAddress());
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));

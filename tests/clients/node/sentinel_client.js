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
const driver = require("./driver");
const { sentinels, protocol, fail } = driver;
const failoverDetector = driver.args.includes("--failover-detector");

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
  await driver.untilReplicated(() => replica.get("js:k"), "v1");
  const role = await replica.call("ROLE");
  if (role[0] !== "slave") fail(`the replica connection is to a ${role[0]}`);
  await driver.readyThenWait();
  // ioredis re-resolves through the sentinels on a lost connection or READONLY.
  const ms = await driver.untilWritten(() => master.set("js:k", "v2"));
  if ((await master.get("js:k")) !== "v2") fail("the write is not readable on the new master");
  driver.reportFailover(ms, old, await masterAddress());
  master.disconnect();
  replica.disconnect();
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));

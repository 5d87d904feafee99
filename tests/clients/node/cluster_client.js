// ioredis `Cluster` and node-redis `createCluster` against a Vigil sharded cluster, unchanged
// (driven by tests/tests/cluster.rs).
//
// Usage: node cluster_client.js HOST:PORT ioredis|node-redis [failover]
//
// Writes and reads keys across every slot, reads them again from replicas (ioredis
// `scaleReads: "slave"`, node-redis `useReplicas`), runs a pipeline within one slot and a
// transaction, and prints `OK <keys>`; any failure prints `FAIL <why>` and exits non-zero.
//
// `failover`: writes keys one by one, 10 ms apart (the suite runs four such writers beside a
// 12-process cluster on 2 cores), prints READY once some are acknowledged and keeps writing;
// after a line on stdin (the test killed a shard's master, or moved slots) it goes on for 10 s
// and until a write is acknowledged, then reads every acknowledged key back and prints
// `OK acked=<n> retried=<n> longest_wait_ms=<ms>`. A key acknowledged and then missing fails
// the run.
"use strict";

const KEYS = 2000;
// The failover mode's pause between two writes.
const PACE_MS = 10;

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

async function untilEqual(read, want, what) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const got = await read().catch(() => null);
    if (got === want) return;
    if (Date.now() > deadline) fail(`${what}: ${got} != ${want}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function ioredis(host, port) {
  const Redis = require("ioredis");
  const rc = new Redis.Cluster([{ host, port }]);
  const reader = new Redis.Cluster([{ host, port }], { scaleReads: "slave" });
  for (let i = 0; i < KEYS; i++) {
    if ((await rc.set(`io:${i}`, String(i))) !== "OK") fail(`SET io:${i}`);
  }
  for (let i = 0; i < KEYS; i++) {
    if ((await rc.get(`io:${i}`)) !== String(i)) fail(`GET io:${i}`);
  }
  for (let i = 0; i < KEYS; i += 7) {
    await untilEqual(() => reader.get(`io:${i}`), String(i), `replica read io:${i}`);
  }
  const p = rc.pipeline();
  for (let i = 0; i < 50; i++) p.set(`{iotag}:${i}`, String(i));
  p.get("{iotag}:49");
  const res = await p.exec();
  if (res[50][1] !== "49") fail(`pipeline ${JSON.stringify(res[50])}`);
  const tx = await rc.multi().incr("{iotx}:a").incr("{iotx}:b").exec();
  if (JSON.stringify(tx) !== "[[null,1],[null,1]]") fail(`transaction ${JSON.stringify(tx)}`);
  await rc.quit();
  await reader.quit();
}

// node-redis hands CLUSTERDOWN to the application (a master whose write lease lapses for a
// moment on a loaded machine answers it): retry it, as an application must.
async function patient(call) {
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      return await call();
    } catch (e) {
      if (!String(e && e.message).startsWith("CLUSTERDOWN") || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function nodeRedis(host, port) {
  const { createCluster } = require("redis");
  const rc = createCluster({ rootNodes: [{ url: `redis://${host}:${port}` }], useReplicas: true });
  rc.on("error", () => {});
  await rc.connect();
  for (let i = 0; i < KEYS; i++) {
    if ((await patient(() => rc.set(`nr:${i}`, String(i)))) !== "OK") fail(`SET nr:${i}`);
  }
  for (let i = 0; i < KEYS; i++) {
    // Reads may go to a replica (`useReplicas`): wait for replication.
    await untilEqual(() => rc.get(`nr:${i}`), String(i), `GET nr:${i}`);
  }
  const tx = await patient(() => rc.multi().incr("{nrtx}:a").incr("{nrtx}:b").exec());
  if (JSON.stringify(tx) !== "[1,1]") fail(`transaction ${JSON.stringify(tx)}`);
  await rc.close();
}

// The failover mode, through `set(key, value)` and `get(key)` of either library.
async function failover(prefix, set, get) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let resumed = null;
  process.stdin.on("data", () => {
    if (resumed === null) resumed = Date.now();
  });
  const acked = [];
  let retried = 0;
  let lastAck = Date.now();
  let gap = 0;
  let ready = false;
  for (let i = 0; ; ) {
    const key = `${prefix}:${i}`;
    try {
      if ((await set(key, String(i))) === "OK") {
        acked.push(i);
        i++;
        const now = Date.now();
        if (ready) gap = Math.max(gap, now - lastAck - PACE_MS);
        lastAck = now;
        await sleep(PACE_MS);
      } else {
        await sleep(PACE_MS);
        continue;
      }
    } catch (e) {
      retried++;
      if (resumed !== null && Date.now() - resumed > 60000) {
        fail(`writes kept failing for 60 s after the fault: ${e && e.message}`);
      }
      await sleep(50);
      continue;
    }
    const now = Date.now();
    if (!ready && acked.length >= 50) {
      ready = true;
      console.log("READY");
    }
    // Here a write was just acknowledged: done 10 s after the fault. (node-redis hands
    // CLUSTERDOWN, which a master answers while its lease lapses on a loaded machine, to the
    // application, so failures may go on now and then; the longest wait is what they cost.)
    if (resumed !== null && now - resumed > 10000) break;
  }
  for (const i of acked) {
    const deadline = Date.now() + 20000;
    for (;;) {
      const got = await get(`${prefix}:${i}`).catch(() => undefined);
      if (got === String(i)) break;
      if (got === null) fail(`acknowledged ${prefix}:${i} is missing`);
      if (Date.now() > deadline) fail(`${prefix}:${i} never read back`);
      await sleep(100);
    }
  }
  console.log(`OK acked=${acked.length} retried=${retried} longest_wait_ms=${gap}`);
}

async function main() {
  const [hp, lib, mode] = process.argv.slice(2);
  const i = hp.lastIndexOf(":");
  const host = hp.slice(0, i);
  const port = Number(hp.slice(i + 1));
  if (mode === "failover" && lib === "ioredis") {
    const Redis = require("ioredis");
    const rc = new Redis.Cluster([{ host, port }]);
    await failover("fio", (k, v) => rc.set(k, v), (k) => rc.get(k));
  } else if (mode === "failover" && lib === "node-redis") {
    const { createCluster } = require("redis");
    const rc = createCluster({ rootNodes: [{ url: `redis://${host}:${port}` }] });
    rc.on("error", () => {});
    await rc.connect();
    await failover("fnr", (k, v) => rc.set(k, v), (k) => rc.get(k));
  } else if (lib === "ioredis") {
    await ioredis(host, port);
    console.log(`OK ${KEYS}`);
  } else if (lib === "node-redis") {
    await nodeRedis(host, port);
    console.log(`OK ${KEYS}`);
  } else fail(`unknown library ${lib}`);
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack.split("\n")[0] : e));

// ioredis `Cluster` and node-redis `createCluster` against a Vigil sharded cluster, unchanged
// (driven by tests/tests/cluster.rs).
//
// Usage: node cluster_client.js HOST:PORT ioredis|node-redis
//
// Writes and reads keys across every slot, reads them again from replicas (ioredis
// `scaleReads: "slave"`, node-redis `useReplicas`), runs a pipeline within one slot and a
// transaction, and prints `OK <keys>`; any failure prints `FAIL <why>` and exits non-zero.
"use strict";

const KEYS = 2000;

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

async function main() {
  const [hp, lib] = process.argv.slice(2);
  const i = hp.lastIndexOf(":");
  const host = hp.slice(0, i);
  const port = Number(hp.slice(i + 1));
  if (lib === "ioredis") await ioredis(host, port);
  else if (lib === "node-redis") await nodeRedis(host, port);
  else fail(`unknown library ${lib}`);
  console.log(`OK ${KEYS}`);
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack.split("\n")[0] : e));

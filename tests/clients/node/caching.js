// node-redis' client-side caching (RESP3 + CLIENT TRACKING) against the server on argv[2]:
// reads are cached (hits counted), and another client's writes invalidate them.
// Prints one final line starting with OK.
const { createClient, BasicClientSideCache } = require("redis");

setTimeout(() => { console.log("FAIL timeout"); process.exit(1); }, 60000).unref();

async function main() {
  const port = Number(process.argv[2]);
  const cache = new BasicClientSideCache({ ttl: 0, maxEntries: 0, recordStats: true });
  const reader = createClient({ socket: { port, host: "127.0.0.1" }, RESP: 3, clientSideCache: cache });
  const writer = createClient({ socket: { port, host: "127.0.0.1" } });
  await reader.connect();
  await writer.connect();
  const eventually = async (what, check) => {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no invalidation: ${what}`);
  };
  await writer.flushAll();
  await writer.set("k", "v1");
  if ((await reader.get("k")) !== "v1") throw new Error("first read");
  for (let i = 0; i < 50; i++) {
    if ((await reader.get("k")) !== "v1") throw new Error("cached read");
  }
  const hits = cache.stats().hitCount;
  if (hits < 50) throw new Error(`expected cache hits, got ${hits}`);
  await writer.set("k", "v2");
  await eventually("SET", async () => (await reader.get("k")) === "v2");
  await writer.del("k");
  await eventually("DEL", async () => (await reader.get("k")) === null);
  await writer.set("k", "v3");
  await eventually("re-SET", async () => (await reader.get("k")) === "v3");
  await writer.flushAll();
  await eventually("FLUSHALL", async () => (await reader.get("k")) === null);
  console.log(`OK node-redis cache hits=${hits} invalidated on SET DEL FLUSHALL`);
  await reader.quit();
  await writer.quit();
}

main().catch((e) => { console.log(`FAIL ${e.message}`); process.exit(1); });

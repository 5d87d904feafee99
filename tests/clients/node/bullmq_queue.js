// BullMQ, a job-queue library built on Lua scripts and streams, as an application runs it
// (driven by tests/tests/apps.rs).
//
// Usage: bullmq_queue.js --server HOST:PORT | --sentinels HOST:PORT[,...] [--jobs N]
//                        [--fault-after N]
//
// A producer adds N jobs (a mix of plain, delayed, prioritised and failing-once-then-retried
// jobs); a worker processes them; a QueueEvents listener counts completion events read from the
// events stream. With --fault-after, prints `FAULT` once that many jobs completed and waits for a
// line on stdin (the test fails the master over meanwhile). At the end it checks that every job
// completed exactly once (the processor succeeded once per job, the queue holds every job as
// completed and none elsewhere) and that a completion event arrived for each, then prints
// `OK <jobs> <processed> <retried> <ms>`. Any failure prints `FAIL <why>` and exits non-zero.

const { Queue, Worker, QueueEvents } = require('bullmq');
const IORedis = require('ioredis');
const readline = require('readline');

function parse() {
  const a = process.argv.slice(2);
  const o = { jobs: 10000, faultAfter: 0 };
  for (let i = 0; i < a.length; i += 2) {
    if (a[i] === '--server') o.server = a[i + 1];
    else if (a[i] === '--sentinels') o.sentinels = a[i + 1];
    else if (a[i] === '--jobs') o.jobs = Number(a[i + 1]);
    else if (a[i] === '--fault-after') o.faultAfter = Number(a[i + 1]);
    else fail(`unknown argument ${a[i]}`);
  }
  return o;
}

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

function connection(o) {
  // BullMQ needs maxRetriesPerRequest null on blocking connections; a failover is ridden out by
  // ioredis' reconnect (through the sentinels when given).
  const common = { maxRetriesPerRequest: null, enableOfflineQueue: true };
  if (o.server) {
    const [host, port] = o.server.split(':');
    return { host, port: Number(port), ...common };
  }
  const sentinels = o.sentinels.split(',').map((hp) => {
    const [host, port] = hp.split(':');
    return { host, port: Number(port) };
  });
  return { sentinels, name: 'mymaster', ...common };
}

let progress = 'starting';

async function main() {
  const o = parse();
  // Whatever hangs (a connection that never gets ready, a job never completed), the run ends.
  // It also says whether a missing completion event is in the events stream (the listener
  // missed it) or not (the write is gone), to tell a client's failing from the server's.
  setTimeout(async () => {
    // The diagnosis gets 20 s of its own; a node that does not answer must not hold it up.
    setTimeout(() => fail(`timed out after 240 s: ${progress}; (not diagnosed in 20 s)`), 20000);
    let detail = '';
    try {
      const missing = [...succeeded.keys()].filter((id) => !completedEvents.has(id));
      // A connection of its own: the queue's may be the one that is stuck.
      const client = new IORedis(conn);
      const field = (f, k) => f[f.indexOf(k) + 1];
      const states = [];
      for (const id of missing.slice(0, 8)) {
        const job = await client.hgetall(`bull:${name}:${id}`);
        const state = await queue.getJobState(id);
        // Only the stream's entries around the job's end: the whole stream is large.
        const at = Number(job.finishedOn || job.processedOn || 0);
        const near = at ? await client.xrange(`bull:${name}:events`, at - 2000, at + 2000) : [];
        const seen = near.filter(([, f]) => field(f, 'jobId') === id).map(([eid, f]) => `${field(f, 'event')}@${eid}`);
        const fields = Object.entries(job).filter(([k]) => !['data', 'opts', 'name', 'stacktrace'].includes(k));
        states.push(`${id}: ${state} ${JSON.stringify(Object.fromEntries(fields))}, events [${seen.join(' ')}]`);
      }
      const last = await client.xrevrange(`bull:${name}:events`, '+', '-', 'COUNT', 1);
      detail = `; ${missing.length} without an event seen (the last completion read ${lastEventId}, the stream's last ${last.length ? last[0][0] : 'none'}): ${states.join('; ')}`;
      client.disconnect();
    } catch (e) {
      detail = `; (not diagnosed: ${e.message})`;
    }
    fail(`timed out after 240 s: ${progress}${detail}`);
  }, 240000);
  const conn = connection(o);
  const name = 'vigil';
  // The events stream is trimmed at 10,000 entries by default (XADD MAXLEN ~), about three
  // per job: a listener that falls that far behind while it reconnects through a failover loses
  // the oldest events, on redis-server as here. Room for every event of the run, so a missing
  // completion event means a lost write, not a trimmed one.
  const queue = new Queue(name, { connection: conn, streams: { events: { maxLen: 1000000 } } });
  const events = new QueueEvents(name, { connection: conn });
  await events.waitUntilReady();
  await queue.waitUntilReady();

  const succeeded = new Map(); // job id -> successful processor runs
  let attempts = 0;
  let retried = 0;
  const completedEvents = new Set();
  let lastEventId = '';
  events.on('completed', ({ jobId }, id) => {
    completedEvents.add(jobId);
    lastEventId = id;
  });

  const worker = new Worker(
    name,
    async (job) => {
      attempts++;
      if (job.data.failOnce && job.attemptsMade === 0) {
        retried++;
        throw new Error('first attempt fails on purpose');
      }
      succeeded.set(job.id, (succeeded.get(job.id) || 0) + 1);
      return { n: job.data.n };
    },
    { connection: conn, concurrency: 20, stalledInterval: 30000 },
  );
  // Reconnects during a failover are expected; anything else is shown for diagnosis.
  let lastError = '';
  worker.on('error', (e) => {
    if (String(e) !== lastError) console.error(`worker error: ${e}`);
    lastError = String(e);
  });
  await worker.waitUntilReady();

  const start = Date.now();
  const batch = 500;
  for (let i = 0; i < o.jobs; i += batch) {
    const jobs = [];
    for (let n = i; n < Math.min(o.jobs, i + batch); n++) {
      const opts = { jobId: `job-${n}`, removeOnComplete: false, removeOnFail: false };
      if (n % 7 === 0) opts.delay = 50 + (n % 5) * 50;
      if (n % 5 === 0) opts.priority = 1 + (n % 10);
      const failOnce = n % 11 === 0;
      if (failOnce) {
        opts.attempts = 3;
        opts.backoff = { type: 'fixed', delay: 100 };
      }
      jobs.push({ name: 'work', data: { n, failOnce }, opts });
    }
    const until = Date.now() + 30000;
    for (;;) {
      try {
        await queue.addBulk(jobs);
        break;
      } catch (e) {
        // During a failover the add may fail; job ids make the retry idempotent.
        if (Date.now() > until) fail(`addBulk: ${e}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  let faulted = o.faultAfter === 0;
  for (;;) {
    if (!faulted && succeeded.size >= o.faultAfter) {
      console.log('FAULT');
      await new Promise((resolve) => {
        readline.createInterface({ input: process.stdin }).once('line', resolve);
      });
      faulted = true;
    }
    if (succeeded.size >= o.jobs && completedEvents.size >= o.jobs) break;
    progress = `${succeeded.size} of ${o.jobs} processed, ${completedEvents.size} events`;
    await new Promise((r) => setTimeout(r, 50));
  }
  const ms = Date.now() - start;

  for (const [id, n] of succeeded) {
    if (n !== 1) fail(`${id} processed ${n} times`);
  }
  const counts = await queue.getJobCounts('completed', 'failed', 'wait', 'active', 'delayed', 'prioritized');
  if (counts.completed !== o.jobs) fail(`queue holds ${counts.completed} completed jobs, want ${o.jobs}: ${JSON.stringify(counts)}`);
  for (const k of ['failed', 'wait', 'active', 'delayed', 'prioritized']) {
    if (counts[k] !== 0) fail(`queue holds ${counts[k]} ${k} jobs: ${JSON.stringify(counts)}`);
  }
  const sample = await queue.getJob('job-77');
  if (!sample || sample.returnvalue?.n !== 77 || sample.attemptsMade !== 2) {
    fail(`job-77: want returnvalue.n 77 after 2 attempts, got ${JSON.stringify(sample && { r: sample.returnvalue, a: sample.attemptsMade })}`);
  }
  console.log(`OK ${o.jobs} ${attempts} ${retried} ${ms}`);
  await worker.close();
  await events.close();
  await queue.close();
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : String(e)));

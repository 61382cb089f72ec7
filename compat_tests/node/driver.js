#!/usr/bin/env node
// kafkajs driver for pykbroker's compatibility matrix (compat_tests/drivers/kafkajs.py).
//
// One operation per process: reads {"op": ..., "bs": "host:port", ...} as JSON
// on stdin, writes {"ok": true, "result": ...} or {"ok": false, "error": ...}
// as one JSON line on stdout. Byte strings travel as base64 (null stays null).
// kafkajs' own log goes to stderr.
'use strict'

const { Kafka, CompressionTypes, ConfigResourceTypes, logLevel } = require('kafkajs')

const DEADLINE_MS = 45000
const SESSION_TIMEOUT = 6000
const HEARTBEAT = 250

const b64 = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))
const unb64 = s => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function client(bs) {
  return new Kafka({
    clientId: 'pykbroker-compat',
    brokers: bs.split(","),
    logLevel: logLevel.WARN,
    retry: { retries: 3, initialRetryTime: 100 },
    logCreator: () => ({ namespace, level, label, log }) => {
      const { message, ...extra } = log
      process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
    },
  })
}

function secureClient(sec) {
  // a TLS/SASL listener: sec = {bootstrap, protocol, mechanism, username, password, ca, cert, key} (PEM text)
  const conf = {
    clientId: 'pykbroker-compat', brokers: sec.bootstrap.split(","), logLevel: logLevel.WARN,
    retry: { retries: 3, initialRetryTime: 100 },
  }
  if (sec.protocol.includes('SSL')) {
    conf.ssl = { ca: [sec.ca] }
    if (sec.cert) { conf.ssl.cert = sec.cert; conf.ssl.key = sec.key }
  }
  if (sec.protocol.startsWith('SASL_')) {
    conf.sasl = { mechanism: sec.mechanism.toLowerCase(), username: sec.username, password: sec.password }
  }
  return new Kafka(conf)
}

function errorOf(e) {
  // The Kafka error behind a kafkajs error (retriers wrap it in `cause`).
  for (let x = e; x; x = x.cause) {
    if (typeof x.code === 'number') return { code: x.code, type: x.type, message: String(x.message) }
  }
  return { code: e && e.name ? e.name : 'Error', type: null, message: String(e && e.message) }
}

function toMessage(r) {
  const m = { partition: r.partition, key: unb64(r.key), value: unb64(r.value) }
  if (r.headers && r.headers.length) {
    m.headers = {}
    for (const [k, v] of r.headers) m.headers[k] = unb64(v)
  }
  if (r.timestamp >= 0) m.timestamp = String(r.timestamp)
  return m
}

function fromMessage(partition, m) {
  const headers = []
  for (const [k, v] of Object.entries(m.headers || {})) {
    for (const one of Array.isArray(v) ? v : [v]) headers.push([k, b64(one)])
  }
  return {
    partition,
    offset: Number(m.offset),
    key: b64(m.key),
    value: b64(m.value),
    headers,
    timestamp: Number(m.timestamp),
  }
}

// n distinct values starting with prefix among [partition, offset, value] rows.
const seenAll = (rows, prefix, n) => new Set(rows.map(r => r[2]).filter(v => v.startsWith(prefix))).size >= n

async function until(cond, what) {
  const deadline = Date.now() + DEADLINE_MS
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`)
    await sleep(20)
  }
}

const ops = {
  async versions() {
    return { kafkajs: require('kafkajs/package.json').version, node: process.version }
  },

  async metadata({ bs, topic }) {
    const admin = client(bs).admin()
    await admin.connect()
    try {
      const cluster = await admin.describeCluster()
      const md = await admin.fetchTopicMetadata({ topics: [topic] })
      const t = md.topics.find(x => x.name === topic)
      const partitions = {}
      for (const p of t.partitions) partitions[p.partitionId] = p.leader
      return { brokers: cluster.brokers.map(b => [b.nodeId, b.host, b.port]), partitions }
    } finally {
      await admin.disconnect()
    }
  },

  async secure_roundtrip({ sec, topic, values }) {
    const kafka = secureClient(sec)
    const producer = kafka.producer({ allowAutoTopicCreation: true })
    await producer.connect()
    try {
      await producer.send({ topic, acks: -1, messages: values.map(v => ({ partition: 0, value: unb64(v) })) })
    } finally {
      await producer.disconnect()
    }
    const consumer = kafka.consumer({ groupId: `compat-sec-${Date.now()}`, sessionTimeout: SESSION_TIMEOUT,
                                      heartbeatInterval: HEARTBEAT })
    await consumer.connect()
    const got = []
    try {
      await consumer.subscribe({ topic, fromBeginning: true })
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('secure_roundtrip: timed out reading')), DEADLINE_MS)
        consumer.run({ autoCommit: false, eachMessage: async ({ message }) => {
          got.push([Number(message.offset), b64(message.value)])
          if (got.length >= values.length) { clearTimeout(timer); resolve() }
        } }).catch(reject)
      })
    } finally {
      await consumer.disconnect()
    }
    return got
  },

  async produce({ bs, topic, recs, compression, idempotent, max_request }) {
    const producer = client(bs).producer(
      idempotent ? { idempotent: true, maxInFlightRequests: 1 } : { allowAutoTopicCreation: false })
    await producer.connect()
    try {
      const codec = compression
        ? { gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD }[compression]
        : CompressionTypes.None
      let meta
      try {
        meta = await producer.send({ topic, acks: -1, compression: codec, messages: recs.map(toMessage) })
      } catch (e) {
        const err = errorOf(e)
        return recs.map(r => ({ partition: r.partition, offset: -1, error: err.code, message: err.message }))
      }
      // One batch per partition: the n-th record of a partition is at baseOffset + n.
      const next = {}
      for (const m of meta) next[m.partition] = Number(m.baseOffset)
      return recs.map(r => ({ partition: r.partition, offset: next[r.partition]++ }))
    } finally {
      await producer.disconnect()
    }
  },

  // kafkajs has no assign(): every consumer is a group member. A fresh group,
  // then seek() each partition to its start offset.
  async consume({ bs, topic, start, want, read_committed }) {
    const consumer = client(bs).consumer({
      groupId: `compat-consume-${process.pid}-${Date.now()}`,
      sessionTimeout: SESSION_TIMEOUT,
      heartbeatInterval: HEARTBEAT,
      readUncommitted: !read_committed,
      maxWaitTimeInMs: 200,
    })
    const got = {}
    for (const p of Object.keys(start)) got[p] = []
    await consumer.connect()
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (got[partition]) got[partition].push(fromMessage(partition, message))
        },
      })
      for (const [p, o] of Object.entries(start)) consumer.seek({ topic, partition: Number(p), offset: String(o) })
      await until(() => Object.entries(want).every(([p, n]) => got[p].length >= n),
        () => `records ${JSON.stringify(Object.fromEntries(Object.entries(got).map(([p, l]) => [p, l.length])))}`)
    } finally {
      await consumer.disconnect()
    }
    return got
  },

  async offsets_for_times({ bs, topic, times }) {
    const admin = client(bs).admin()
    await admin.connect()
    try {
      const out = {}
      // kafkajs asks for all partitions of a topic at one timestamp.
      for (const ts of new Set(Object.values(times))) {
        for (const { partition, offset } of await admin.fetchTopicOffsetsByTimestamp(topic, ts)) {
          if (times[partition] === ts) out[partition] = Number(offset)
        }
      }
      return out
    } finally {
      await admin.disconnect()
    }
  },

  async admin({ bs, action, args }) {
    const admin = client(bs).admin()
    await admin.connect()
    try {
      switch (action) {
        case 'create_topics':
          await admin.createTopics({
            waitForLeaders: true,
            topics: args.topics.map(([topic, numPartitions, configs]) => ({
              topic, numPartitions, replicationFactor: 1,
              configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
            })),
          })
          return null
        case 'delete_topics':
          await admin.deleteTopics({ topics: args.names })
          return null
        case 'create_partitions':
          await admin.createPartitions({ topicPartitions: [{ topic: args.topic, count: args.total }] })
          return null
        case 'describe_configs': {
          const r = await admin.describeConfigs({
            includeSynonyms: false,
            resources: [{ type: ConfigResourceTypes.TOPIC, name: args.topic }],
          })
          const res = r.resources[0]
          if (res.errorCode) throw new Error(`describeConfigs: ${res.errorCode} ${res.errorMessage}`)
          return Object.fromEntries(res.configEntries.map(e => [e.configName, e.configValue]))
        }
        case 'alter_configs':
          await admin.alterConfigs({
            resources: [{
              type: ConfigResourceTypes.TOPIC, name: args.topic,
              configEntries: Object.entries(args.configs).map(([name, value]) => ({ name, value })),
            }],
          })
          return null
        default:
          throw new Error(`unknown admin action ${action}`)
      }
    } finally {
      await admin.disconnect()
    }
  },

  async group_rebalance({ bs, topic, group, partitions }) {
    const kafka = client(bs)
    const members = []
    const assigned = [[], [], []]
    let sink = []
    const before = sink
    for (let i = 0; i < 3; i++) {
      const c = kafka.consumer({
        groupId: group, sessionTimeout: SESSION_TIMEOUT, heartbeatInterval: HEARTBEAT,
        rebalanceTimeout: 10000, maxWaitTimeInMs: 100,
      })
      c.on(c.events.GROUP_JOIN, e => { assigned[i] = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b) })
      await c.connect()
      await c.subscribe({ topics: [topic], fromBeginning: true })
      await c.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          sink.push([partition, Number(message.offset), message.value.toString()])
        },
      })
      members.push(c)
    }
    const split = live => {
      const shares = live.map(i => assigned[i])
      const all = shares.flat().sort((a, b) => a - b)
      return shares.every(s => s.length > 0) && JSON.stringify(all) === JSON.stringify([...Array(partitions).keys()])
    }
    let live = [0, 1, 2]
    const state = () => `assignments ${JSON.stringify(live.map(i => assigned[i]))}, consumed ${JSON.stringify(sink)}`
    try {
      await until(() => split(live) && seenAll(before, 'before-', partitions), state)
      const assign3 = [0, 1, 2].map(i => assigned[i])
      await members[2].disconnect()
      live = [0, 1]
      // The survivors' GROUP_JOIN after the rebalance replaces their shares.
      await until(() => split(live), state)
      const assign2 = live.map(i => assigned[i])
      const after = []
      sink = after
      const producer = kafka.producer()
      await producer.connect()
      await producer.send({
        topic, acks: -1,
        messages: [...Array(partitions).keys()].map(p => ({ partition: p, value: `after-${p}` })),
      })
      await producer.disconnect()
      await until(() => seenAll(after, 'after-', partitions), state)
      return { assign3, assign2, before, after }
    } finally {
      for (const i of live) await members[i].disconnect()
    }
  },

  async group_consume({ bs, topic, group, n }) {
    const consumer = client(bs).consumer({
      groupId: group, sessionTimeout: SESSION_TIMEOUT, heartbeatInterval: HEARTBEAT, maxWaitTimeInMs: 100,
    })
    const out = []
    await consumer.connect()
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => { out.push(fromMessage(partition, message)) },
      })
      await until(() => out.length >= n, () => `${out.length} of ${n} records`)
      const last = out[n - 1]
      await consumer.commitOffsets([{ topic, partition: last.partition, offset: String(last.offset + 1) }])
    } finally {
      await consumer.disconnect()
    }
    return out.slice(0, n)
  },

  async produce_transactions({ bs, topic, txn_id, aborted, committed }) {
    const producer = client(bs).producer({ transactionalId: txn_id, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      for (const [recs, commit] of [[aborted, false], [committed, true]]) {
        const txn = await producer.transaction()
        try {
          await txn.send({ topic, acks: -1, messages: recs.map(toMessage) })
        } catch (e) {
          await txn.abort()
          throw e
        }
        if (commit) await txn.commit()
        else await txn.abort()
      }
      return null
    } finally {
      await producer.disconnect()
    }
  },
}

async function main() {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  let reply
  try {
    reply = { ok: true, result: await ops[req.op](req) }
  } catch (e) {
    reply = { ok: false, error: errorOf(e), stack: String(e && e.stack) }
  }
  process.stdout.write(JSON.stringify(reply) + '\n', () => process.exit(0))
}

main()

// kafkajs over SASL_SSL: produce three records, read them back, print [[offset, value], ...].
// Config on stdin: {brokers, ca, topic, mechanism, username, password}.
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const cfg = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const kafka = new Kafka({
    clientId: "pykbroker-sasl", brokers: cfg.brokers, logLevel: logLevel.NOTHING,
    ssl: { ca: [cfg.ca] },
    sasl: { mechanism: cfg.mechanism, username: cfg.username, password: cfg.password },
    connectionTimeout: 5000, requestTimeout: 10000, retry: { retries: 3 },
  });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  await producer.send({ topic: cfg.topic, messages: [{ value: "a" }, { value: "b" }, { value: "c" }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: cfg.topic });
  await consumer.connect();
  await consumer.subscribe({ topic: cfg.topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out")), 20000);
    consumer.run({ eachMessage: async ({ message }) => {
      got.push([message.offset, message.value.toString()]);
      if (got.length === 3) { clearTimeout(timer); resolve(); }
    } }).catch(reject);
  });
  await consumer.disconnect();
  process.stdout.write(JSON.stringify(got));
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });

// KafkaJS against the gateway: create a topic, produce keyed gzip records with
// headers from an idempotent producer, consume them in a group, commit, and
// print what came back as JSON for tests/integration/test_kafkajs.py to check.
// Usage: node kafkajs_roundtrip.js BOOTSTRAP TOPIC GROUP COUNT
'use strict';
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const [bootstrap, topic, groupId, countText] = process.argv.slice(2);
const count = Number(countText);
const BASE_TS = 1700000000000;

async function main() {
  const kafka = new Kafka({ clientId: 'krg-test', brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) {
    messages.push({ key: `key-${i % 7}`, value: `value-${i}`, timestamp: String(BASE_TS + i),
                    headers: { n: String(i), kind: 'kafkajs' } });
  }
  const sent = [];
  for (let i = 0; i < messages.length; i += 100) {
    const reply = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP,
                                        messages: messages.slice(i, i + 100) });
    sent.push(...reply.map((r) => ({ partition: r.partition, baseOffset: r.baseOffset, error: r.errorCode })));
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const received = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} records`)), 60000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        received.push({
          partition, offset: Number(message.offset), key: message.key.toString(),
          value: message.value.toString(), timestamp: Number(message.timestamp),
          headers: Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k, v.toString()])),
        });
        if (received.length === count) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect(); // commits what eachMessage resolved
  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  const topicOffsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  process.stdout.write(JSON.stringify({ sent, received, committed: offsets[0].partitions, ends: topicOffsets }));
}

main().catch((error) => { console.error(error); process.exit(1); });

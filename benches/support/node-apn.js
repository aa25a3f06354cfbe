// The peer of benches/e2e.sh: @parse/node-apn (the Node.js APNs library most Node push
// servers use) sending the same VoIP push as h2load, raw, to the same simulator, with the
// same shape of load: CLIENTS HTTP/2 connections, IN_FLIGHT pushes outstanding, PUSHES in all,
// each to its own device token. Prints one JSON line: pushes, sent, failed, seconds, per second.
//
//   NODE_PATH=<dir>/node_modules node node-apn.js HOST:PORT KEY.p8 CA.pem PAYLOAD.json
//
// Environment: PUSHES (100000), CLIENTS (4), IN_FLIGHT (400), KEY_ID, TEAM_ID, TOPIC.
'use strict';
const apn = require('@parse/node-apn');
const fs = require('fs');

const [address, keyFile, caFile, payloadFile] = process.argv.slice(2);
const pushes = Number(process.env.PUSHES || 100000);
const clients = Number(process.env.CLIENTS || 4);
const inFlight = Number(process.env.IN_FLIGHT || 400);
const warmUp = Math.min(1000, pushes);

const provider = new apn.MultiProvider({
  token: {
    key: keyFile,
    keyId: process.env.KEY_ID || 'DEVKEY1234',
    teamId: process.env.TEAM_ID || 'DEVTEAM123',
  },
  // node-apn connects to `https://${address}` with its `port` option on top (443 unless
  // given), so the port goes in both.
  address,
  port: Number(address.split(':').pop()),
  ca: fs.readFileSync(caFile),
  clientCount: clients,
});

const payload = JSON.parse(fs.readFileSync(payloadFile, 'utf8'));
function notification() {
  const note = new apn.Notification();
  note.rawPayload = payload;
  note.topic = process.env.TOPIC || 'com.example.ringcast.voip';
  note.pushType = 'voip';
  note.priority = 10;
  note.expiry = Math.floor(Date.now() / 1000) + 45;
  return note;
}

// A production VoIP token per push (the simulator reads kind and environment off the first
// two bytes: neither 5b nor xx-a1).
function token(i) {
  return 'c0' + i.toString(16).padStart(62, '0');
}

async function run(count, offset) {
  let next = 0;
  let sent = 0;
  let failed = 0;
  const failures = {};
  async function worker() {
    while (next < count) {
      const i = offset + next++;
      // A notification per push, as a server building each call's push would.
      const result = await provider.send(notification(), token(i));
      sent += result.sent.length;
      failed += result.failed.length;
      for (const failure of result.failed) {
        const reason = (failure.response && failure.response.reason) || String(failure.error);
        failures[reason] = (failures[reason] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return { sent, failed, failures };
}

(async () => {
  // Connections opened and the provider token signed before the clock starts, as h2load's
  // connections are.
  await run(warmUp, 0);
  const started = process.hrtime.bigint();
  const { sent, failed, failures } = await run(pushes, warmUp);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    JSON.stringify({
      pushes,
      sent,
      failed,
      failures,
      seconds: Math.round(seconds * 1000) / 1000,
      per_second: Math.round(sent / seconds),
    })
  );
  provider.shutdown();
})().catch(error => {
  console.error(error);
  process.exit(1);
});

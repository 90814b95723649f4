#!/usr/bin/env node
// A whole verification through the official Twilio Node SDK against otpd,
// with only the SDK's base URL and credentials changed (api/tests/twilio_sdk.rs
// runs it against a real otpd on loopback, with NODE_PATH from scripts/node-env.sh).
//
// Env: OTPD_URL (no /v2), TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TO_PHONE,
// TO_EMAIL, CODE_LOG (otpd's JSON log, where the development sink writes codes).
"use strict";
const assert = require("assert");
const fs = require("fs");
const twilio = require("twilio");

const URL = process.env.OTPD_URL.replace(/\/+$/, "");
const TO_PHONE = process.env.TO_PHONE;
const TO_EMAIL = process.env.TO_EMAIL;

function connect(token) {
  const client = twilio(process.env.TWILIO_ACCOUNT_SID, token);
  // The one change a service makes to move to otpd (docs/TWILIO.md).
  client.verify.baseUrl = URL;
  client.edge = undefined;
  client.region = undefined;
  return client;
}
const client = connect(process.env.TWILIO_AUTH_TOKEN);
const v2 = client.verify.v2;

// A missing date would silently read as "now" in this SDK: check the raw answer.
const STRICT_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
function lastBody() {
  const b = client.httpClient.lastResponse.body;
  return typeof b === "string" ? JSON.parse(b) : b;
}
function must(obj, names, kind) {
  const missing = names.filter((n) => obj[n] === undefined || obj[n] === null);
  assert.deepStrictEqual(missing, [], `${kind}: fields the SDK reads are missing: ${missing}`);
  const raw = lastBody();
  for (const snake of ["date_created", "date_updated"]) {
    assert.match(String(raw[snake]), STRICT_DATE, `${kind}: ${snake}=${raw[snake]}`);
  }
}

const SERVICE_FIELDS = ["sid", "accountSid", "friendlyName", "codeLength", "lookupEnabled",
  "psd2Enabled", "skipSmsToLandlines", "dtmfInputRequired", "doNotShareWarningEnabled",
  "customCodeEnabled", "verifyEventSubscriptionEnabled", "dateCreated", "dateUpdated", "url", "links"];
const VERIFICATION_FIELDS = ["sid", "serviceSid", "accountSid", "to", "channel", "status", "valid",
  "lookup", "sendCodeAttempts", "dateCreated", "dateUpdated", "url"];
const CHECK_FIELDS = ["sid", "serviceSid", "accountSid", "to", "channel", "status", "valid",
  "dateCreated", "dateUpdated"];

// The code otpd's log sink wrote for this verification (bounded wait).
async function codeFor(sid) {
  const challenge = sid.slice(2).toLowerCase();
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    for (const line of fs.readFileSync(process.env.CODE_LOG, "utf8").split("\n")) {
      let entry;
      try { entry = JSON.parse(line); } catch (_) { continue; }
      const fields = entry.fields || entry;
      if (fields.challenge_id === challenge && fields.code) return fields.code;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no code in the log for ${sid}`);
}

async function refused(promise, status, code) {
  try {
    await promise;
  } catch (e) {
    assert.strictEqual(e.status, status, `status ${e.status}: ${e.message}`);
    assert.strictEqual(e.code, code, `code ${e.code}: ${e.message}`);
    return;
  }
  assert.fail(`expected ${status}/${code}`);
}

(async () => {
  const svc = await v2.services.create({ friendlyName: "otpd SDK check" });
  must(svc, SERVICE_FIELDS, "Service");
  assert.ok(svc.sid.startsWith("VA"));
  assert.strictEqual(svc.codeLength, 6);
  assert.strictEqual((await v2.services(svc.sid).fetch()).sid, svc.sid);

  for (const [to, channel] of [[TO_PHONE, "sms"], [TO_EMAIL, "email"]]) {
    const ver = await v2.services(svc.sid).verifications.create({ to, channel });
    must(ver, VERIFICATION_FIELDS, `Verification (${channel})`);
    assert.deepStrictEqual([ver.to, ver.channel, ver.status, ver.valid], [to, channel, "pending", false]);
    const got = await v2.services(svc.sid).verifications(ver.sid).fetch();
    must(got, VERIFICATION_FIELDS, `Verification fetched (${channel})`);
    const code = await codeFor(ver.sid);
    const wrong = code === "1".repeat(code.length) ? "2".repeat(code.length) : "1".repeat(code.length);
    let chk = await v2.services(svc.sid).verificationChecks.create({ to, code: wrong });
    must(chk, CHECK_FIELDS, `VerificationCheck wrong (${channel})`);
    assert.deepStrictEqual([chk.status, chk.valid], ["pending", false]);
    chk = await v2.services(svc.sid).verificationChecks.create({ to, code });
    must(chk, CHECK_FIELDS, `VerificationCheck (${channel})`);
    assert.deepStrictEqual([chk.sid, chk.status, chk.valid], [ver.sid, "approved", true]);
    await refused(v2.services(svc.sid).verificationChecks.create({ to, code }), 404, 20404);
  }

  const first = await v2.services(svc.sid).verifications.create({ to: TO_PHONE, channel: "sms" });
  const firstCode = await codeFor(first.sid);
  const second = await v2.services(svc.sid).verifications.create({ to: TO_PHONE, channel: "sms" });
  await refused(v2.services(svc.sid).verificationChecks.create({ verificationSid: first.sid, code: firstCode }), 404, 20404);
  const chk = await v2.services(svc.sid).verificationChecks.create({
    verificationSid: second.sid, code: await codeFor(second.sid) });
  assert.deepStrictEqual([chk.status, chk.valid], ["approved", true]);

  const third = await v2.services(svc.sid).verifications.create({ to: TO_PHONE, channel: "sms" });
  const canceled = await v2.services(svc.sid).verifications(third.sid).update({ status: "canceled" });
  must(canceled, VERIFICATION_FIELDS, "Verification canceled");
  assert.strictEqual(canceled.status, "canceled");

  await refused(v2.services(svc.sid).verifications.create({ to: TO_PHONE, channel: "whatsapp" }), 400, 60200);
  await refused(v2.services("VA" + "0".repeat(32)).fetch(), 404, 20404);
  await refused(connect("0".repeat(64)).verify.v2.services(svc.sid).fetch(), 401, 20003);

  assert.strictEqual(await v2.services(svc.sid).remove(), true);
  await refused(v2.services(svc.sid).fetch(), 404, 20404);

  console.log(`OK: the Twilio Node SDK verified an SMS and an email through otpd (service ${svc.sid})`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

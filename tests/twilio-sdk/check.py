#!/usr/bin/env python3
"""A whole verification through the official Twilio Python SDK against otpd,
with only the SDK's base URL and credentials changed (api/tests/twilio_sdk.rs
runs it against a real otpd on loopback).

Env: OTPD_URL (no /v2), TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TO_PHONE,
TO_EMAIL, CODE_LOG (otpd's JSON log, where the development sink writes the
codes it "sends").

Every field the SDK's instances read from otpd's answers must be there (not
None) and dates must parse as datetimes: an answer that lost one fails here.
"""
import json
import os
import sys
import time
from datetime import datetime

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

URL = os.environ["OTPD_URL"].rstrip("/")
TO_PHONE = os.environ["TO_PHONE"]
TO_EMAIL = os.environ["TO_EMAIL"]
LOG = os.environ["CODE_LOG"]

client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
# The one change a service makes to move to otpd (docs/TWILIO.md).
client.verify.base_url = URL
client.edge = None
client.region = None
v2 = client.verify.v2

SERVICE_FIELDS = ["sid", "account_sid", "friendly_name", "code_length", "lookup_enabled",
                  "psd2_enabled", "skip_sms_to_landlines", "dtmf_input_required",
                  "do_not_share_warning_enabled", "custom_code_enabled",
                  "verify_event_subscription_enabled", "date_created", "date_updated",
                  "url", "links"]
VERIFICATION_FIELDS = ["sid", "service_sid", "account_sid", "to", "channel", "status", "valid",
                       "lookup", "send_code_attempts", "date_created", "date_updated", "url"]
CHECK_FIELDS = ["sid", "service_sid", "account_sid", "to", "channel", "status", "valid",
                "date_created", "date_updated"]


def must(obj, names, kind):
    missing = [n for n in names if getattr(obj, n) is None]
    assert not missing, f"{kind}: fields the SDK reads are missing: {missing}"
    for n in ("date_created", "date_updated"):
        if n in names:
            assert isinstance(getattr(obj, n), datetime), f"{kind}: {n} is not a date"


def code_for(verification_sid):
    """The code otpd's log sink wrote for this verification (bounded wait)."""
    challenge = verification_sid[2:].lower()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(LOG, encoding="utf-8") as log:
            for line in log:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                fields = entry.get("fields", entry)
                if fields.get("challenge_id") == challenge and fields.get("code"):
                    return fields["code"]
        time.sleep(0.05)
    raise AssertionError(f"no code in the log for {verification_sid}")


def refused(call, status, code):
    try:
        call()
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.msg)
        return e
    raise AssertionError(f"expected {status}/{code}")


svc = v2.services.create(friendly_name="otpd SDK check")
must(svc, SERVICE_FIELDS, "Service")
assert svc.sid.startswith("VA") and svc.friendly_name == "otpd SDK check", vars(svc)
assert svc.code_length == 6, svc.code_length
assert v2.services(svc.sid).fetch().sid == svc.sid

for to, channel in ((TO_PHONE, "sms"), (TO_EMAIL, "email")):
    ver = v2.services(svc.sid).verifications.create(to=to, channel=channel)
    must(ver, VERIFICATION_FIELDS, f"Verification ({channel})")
    assert ver.sid.startswith("VE") and ver.service_sid == svc.sid, vars(ver)
    assert (ver.to, ver.channel, ver.status, ver.valid) == (to, channel, "pending", False), vars(ver)
    got = v2.services(svc.sid).verifications(ver.sid).fetch()
    must(got, VERIFICATION_FIELDS, f"Verification fetched ({channel})")
    assert (got.sid, got.status) == (ver.sid, "pending")
    code = code_for(ver.sid)
    wrong = "1" * len(code) if code != "1" * len(code) else "2" * len(code)
    chk = v2.services(svc.sid).verification_checks.create(to=to, code=wrong)
    must(chk, CHECK_FIELDS, f"VerificationCheck wrong ({channel})")
    assert (chk.status, chk.valid) == ("pending", False), (chk.status, chk.valid)
    chk = v2.services(svc.sid).verification_checks.create(to=to, code=code)
    must(chk, CHECK_FIELDS, f"VerificationCheck ({channel})")
    assert (chk.sid, chk.status, chk.valid) == (ver.sid, "approved", True), vars(chk)
    # Used: gone, as Twilio answers.
    refused(lambda: v2.services(svc.sid).verification_checks.create(to=to, code=code), 404, 20404)

# Every send is a new code: the earlier one no longer verifies.
first = v2.services(svc.sid).verifications.create(to=TO_PHONE, channel="sms")
first_code = code_for(first.sid)
second = v2.services(svc.sid).verifications.create(to=TO_PHONE, channel="sms")
assert second.sid != first.sid
refused(lambda: v2.services(svc.sid).verification_checks.create(
    verification_sid=first.sid, code=first_code), 404, 20404)
chk = v2.services(svc.sid).verification_checks.create(
    verification_sid=second.sid, code=code_for(second.sid))
assert (chk.status, chk.valid) == ("approved", True)

# Cancelled by the service.
third = v2.services(svc.sid).verifications.create(to=TO_PHONE, channel="sms")
canceled = v2.services(svc.sid).verifications(third.sid).update(status="canceled")
must(canceled, VERIFICATION_FIELDS, "Verification canceled")
assert canceled.status == "canceled", canceled.status

# Out of attempts: 60202.
fourth = v2.services(svc.sid).verifications.create(to=TO_EMAIL, channel="email")
bad = "0" * len(code_for(fourth.sid)) if code_for(fourth.sid) != "000000" else "999999"
while True:
    try:
        chk = v2.services(svc.sid).verification_checks.create(verification_sid=fourth.sid, code=bad)
        # The last attempt's answer already says the verification is spent.
        assert chk.status in ("pending", "max_attempts_reached") and chk.valid is False, vars(chk)
    except TwilioRestException as e:
        assert (e.status, e.code) == (429, 60202), (e.status, e.code, e.msg)
        break

# What otpd refuses, the SDK reports as Twilio would.
refused(lambda: v2.services(svc.sid).verifications.create(to=TO_PHONE, channel="call"), 400, 60200)
refused(lambda: v2.services(svc.sid).verifications.create(to="12345", channel="sms"), 400, 60200)
refused(lambda: v2.services("VA" + "0" * 32).fetch(), 404, 20404)
bad_client = Client(os.environ["TWILIO_ACCOUNT_SID"], "0" * 64)
bad_client.verify.base_url = URL
refused(lambda: bad_client.verify.v2.services(svc.sid).fetch(), 401, 20003)

# A Service is deleted; then it is gone.
assert v2.services(svc.sid).delete() is True
refused(lambda: v2.services(svc.sid).fetch(), 404, 20404)

print(f"OK: the Twilio Python SDK verified an SMS and an email through otpd (service {svc.sid})")
sys.exit(0)

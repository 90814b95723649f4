"""Registers a citizen, logs them in and checks the code, through a Python
client generated from otpd's OpenAPI description, with no hand-written
HTTP. Generate the client first (openapi-python-client, from PyPI):

    curl -s http://127.0.0.1:8080/openapi.json > openapi.json
    python -m openapi_python_client generate --path openapi.json --meta none
    # -> ./otpd_client

then, with a key whose client has the `accounts` and `auth` scopes:

    python sign_in.py http://127.0.0.1:8080 "$KEY" +351910000000 4821 123456

The last argument is the code the citizen received (here a test
destination's fixed code, docs/OPERATIONS.md "Test mode"). Each step prints
one line; an error answer is printed with its code and the script exits 1.
"""

import sys

from otpd_client import AuthenticatedClient
from otpd_client.api.accounts import read_account, register
from otpd_client.api.sign_in import login, verify
from otpd_client.models import (
    AccountOut,
    ApprovalOut,
    ErrorBody,
    IdentityIn,
    IssuedOut,
    LoginIn,
    RegisterIn,
    VerifyIn,
)


def expect(answer, kind):
    if isinstance(answer, kind):
        return answer
    if isinstance(answer, ErrorBody):
        sys.exit(f"error {answer.error.code}: {answer.error.message}")
    sys.exit(f"unexpected answer: {answer!r}")


def main():
    base_url, key, phone, pin, code = sys.argv[1:6]
    client = AuthenticatedClient(base_url=base_url, token=key)

    citizen = RegisterIn(identity=IdentityIn(kind="civil_id", number="12345678"), phone=phone, pin=pin)
    account = expect(register.sync(client=client, body=citizen), AccountOut)
    print(f"registered {account.account_id} {account.state} {account.phone}")

    sent = expect(login.sync(client=client, body=LoginIn(phone=phone, pin=pin)), IssuedOut)
    print(f"code sent {sent.challenge_id} {sent.channel} {sent.masked_destination}")

    approval = expect(verify.sync(client=client, body=VerifyIn(challenge_id=sent.challenge_id, code=code)), ApprovalOut)
    print(f"approved {approval.account_id} {approval.identity.kind} {approval.identity.number}")

    again = verify.sync(client=client, body=VerifyIn(challenge_id=sent.challenge_id, code=code))
    print(f"second use {expect(again, ErrorBody).error.code}")

    read = expect(read_account.sync(account.account_id, client=client), AccountOut)
    print(f"read {read.account_id} {read.state}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A signing service's side of otpd's signature authorisation, with a
general-purpose JWT library (PyJWT) and nothing of otpd's own code.

Before it signs a PDF, a signing service must know that *this* citizen
approved *this* document through *this* relying party, recently. otpd's
answer to POST /v1/signatures/verify carries an `attestation`: a compact
JWS signed with Ed25519 (alg EdDSA). This checks it against otpd's public
keys (GET /.well-known/jwks.json) and the hash of the document about to be
signed:

    pip install 'pyjwt[crypto]'
    python3 verify_attestation.py --jwks http://127.0.0.1:8080/.well-known/jwks.json \\
        --sha256 <hex of the PDF's SHA-256> --issuer <signing.issuer> TOKEN

Exit 0 and the claims as JSON when the token holds; exit 1 and the reason
otherwise.
"""

import argparse
import json
import sys
import urllib.request

import jwt


def key_set(source):
    """The JWK Set from a URL or a file."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as answer:
            return json.load(answer)
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def check(token, jwks, sha256=None, issuer=None):
    """The claims of `token` if it holds, else raises ValueError with the reason."""
    kid = jwt.get_unverified_header(token).get("kid")
    keys = {k.get("kid"): k for k in jwks.get("keys", [])}
    if kid not in keys:
        raise ValueError(f"key {kid!r} is not published: unknown, past its overlap, or retired")
    key = jwt.PyJWK.from_dict(keys[kid])
    claims = jwt.decode(
        token,
        key=key,
        algorithms=["EdDSA"],
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": False},
    )
    if sha256 is not None:
        doc = claims.get("doc")
        if doc is None:
            raise ValueError("the token approves no document")
        if doc.get("sha256") != sha256.strip().lower():
            raise ValueError(f"the token approves {doc.get('sha256')}, not {sha256}")
    return claims


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jwks", required=True, help="URL or file of otpd's JWK Set")
    parser.add_argument("--sha256", help="the document's SHA-256 the token must approve")
    parser.add_argument("--issuer", help="the issuer the token must name")
    parser.add_argument("token")
    args = parser.parse_args()
    try:
        claims = check(args.token, key_set(args.jwks), args.sha256, args.issuer)
    except (ValueError, jwt.PyJWTError) as e:
        print(f"refused: {e}", file=sys.stderr)
        return 1
    print(json.dumps(claims, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

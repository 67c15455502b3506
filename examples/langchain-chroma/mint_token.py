"""Mints a development token, as the demo's identity provider would issue it.

    VECGATE_JWT_SECRET=... python mint_token.py --sub alice --role user \
        --department FINANCE --region EMEA

prints an HS256 JWT with iss/aud matching vecgate.yaml.template, `roles` as a list and the
department/region claims that vecgate maps to the principal's attributes. Development only:
in production the tokens come from your identity provider and vecgate verifies them with its
public key or JWKS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jwt

ISSUER = "https://idp.vecgate.example"  # auth.issuer in vecgate.yaml.template
AUDIENCE = "vecgate-demo"  # auth.audience
SECRET_ENV = "VECGATE_JWT_SECRET"  # auth.hs256_secret_env


def mint(secret: str, sub: str, roles: list[str], ttl_s: int = 3600, **claims: str) -> str:
    """An HS256 JWT for `sub` with `roles` and extra string claims, valid for `ttl_s` seconds
    (negative: already expired)."""
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "roles": roles,
        "iat": now,
        "exp": now + ttl_s,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sub", required=True)
    parser.add_argument("--role", action="append", required=True, help="repeat for several")
    parser.add_argument("--department")
    parser.add_argument("--region")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    args = parser.parse_args()
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        print(f"error: set {SECRET_ENV}", file=sys.stderr)
        return 2
    claims = {k: v for k, v in (("department", args.department), ("region", args.region)) if v}
    print(mint(secret, args.sub, args.role, args.ttl, **claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())

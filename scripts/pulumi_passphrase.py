"""Pulumi's passphrase secrets provider, reimplemented byte-compatibly in Python.

Lets us write `encryptionsalt:` and `secure:` values into Pulumi.<stack>.yaml without the
Pulumi CLI, such that the real CLI (passphrase provider) decrypts them.

Followed upstream (github.com/pulumi/pulumi):
  * pkg/secrets/passphrase/manager.go
      - NewPassphraseSecretsManager: 8 random salt bytes; the crypter encrypts the known
        plaintext "pulumi"; state = "v1:" + base64.StdEncoding(salt) + ":" + <that ciphertext>,
        i.e. `v1:<b64 salt>:v1:<b64 nonce>:<b64 ciphertext>` (this is `encryptionsalt`).
      - symmetricCrypterFromPhraseAndState: SplitN(state, ":", 3), version must be "v1",
        salt = StdEncoding-decode(part 1), decrypt everything after the 2nd colon, and the
        passphrase is wrong unless that decrypts to exactly "pulumi".
  * sdk/go/common/resource/config/crypt.go
      - NewSymmetricCrypterFromPassphrase: key = pbkdf2.Key([]byte(phrase), salt,
        1000000, 32, sha256.New)  (PBKDF2-HMAC-SHA256, 1,000,000 iterations, 32-byte key).
      - symmetricCrypter: AES-256-GCM, 12-byte random nonce, no additional data,
        Seal output (ciphertext || 16-byte tag); formatted "v1:%s:%s" with
        base64.StdEncoding (standard alphabet, padded) of nonce and sealed bytes.
        DecryptValue: strings.Split(value, ":") must give exactly 3 parts, "v1", nonce
        must be 12 bytes.
  * sdk/go/common/resource/config/value.go: a plain (non-object) secure value
    `key: {secure: <ct>}` is DecryptValue(<ct>) of the raw string itself (no JSON quoting).
Upstream test vector (pkg/secrets/passphrase/manager_test.go): passphrase "password",
state "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ==".

CLI (passphrase from env PULUMI_CONFIG_PASSPHRASE):
  python scripts/pulumi_passphrase.py new-salt
  python scripts/pulumi_passphrase.py encrypt --salt-state 'v1:...' VALUE
  python scripts/pulumi_passphrase.py decrypt --salt-state 'v1:...' 'v1:nonce:ct'
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import os
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PBKDF2_ITERATIONS = 1_000_000
KEY_BYTES = 32
SALT_BYTES = 8
NONCE_BYTES = 12
KNOWN_PLAINTEXT = "pulumi"


class IncorrectPassphraseError(ValueError):
    """The passphrase does not unlock the given `encryptionsalt` state."""


def _b64decode(s: str) -> bytes:
    # Go's base64.StdEncoding: standard alphabet, padding required.
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"bad base64 value {s!r}: {exc}") from exc


def _b64encode(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def derive_key(passphrase: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode("utf-8"), salt, PBKDF2_ITERATIONS, KEY_BYTES)


def encrypt(key: bytes, plaintext: str) -> str:
    """AES-256-GCM encrypt `plaintext`; returns `v1:<b64 nonce>:<b64 ciphertext+tag>`."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32 byte key")
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), None)
    return f"v1:{_b64encode(nonce)}:{_b64encode(sealed)}"


def decrypt(key: bytes, ciphertext: str) -> str:
    """Inverse of `encrypt`; raises ValueError on malformed input or authentication failure."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32 byte key")
    parts = ciphertext.split(":")
    if len(parts) != 3:
        raise ValueError("bad value")
    if parts[0] != "v1":
        raise ValueError("unknown value version")
    nonce, sealed = _b64decode(parts[1]), _b64decode(parts[2])
    if len(nonce) != NONCE_BYTES:
        raise ValueError("bad value: nonce size is incorrect")
    try:
        return AESGCM(key).decrypt(nonce, sealed, None).decode("utf-8")
    except InvalidTag as exc:
        raise ValueError("decryption failed (wrong key or corrupted value)") from exc


def new_salt_state(passphrase: str) -> str:
    """A fresh `encryptionsalt` value: `v1:<b64 salt>:v1:<b64 nonce>:<b64 ct of "pulumi">`."""
    salt = os.urandom(SALT_BYTES)
    return f"v1:{_b64encode(salt)}:{encrypt(derive_key(passphrase, salt), KNOWN_PLAINTEXT)}"


def key_from_salt_state(passphrase: str, salt_state: str) -> bytes:
    """Derive the key from an `encryptionsalt` value, verifying the passphrase against it."""
    parts = salt_state.split(":", 2)
    if len(parts) != 3:
        raise ValueError("malformed state value")
    if parts[0] != "v1":
        raise ValueError("unknown state version")
    key = derive_key(passphrase, _b64decode(parts[1]))
    try:
        check = decrypt(key, parts[2])
    except ValueError as exc:
        raise IncorrectPassphraseError("incorrect passphrase for this encryptionsalt") from exc
    if check != KNOWN_PLAINTEXT:
        raise IncorrectPassphraseError("incorrect passphrase for this encryptionsalt")
    return key


def _passphrase() -> str:
    phrase = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if phrase is None:
        sys.exit("error: set PULUMI_CONFIG_PASSPHRASE")
    return phrase


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("new-salt", help="print a new encryptionsalt value")
    for name in ("encrypt", "decrypt"):
        p = sub.add_parser(name)
        p.add_argument("--salt-state", required=True, help="the stack's encryptionsalt value")
        p.add_argument("value")
    args = parser.parse_args(argv)

    phrase = _passphrase()
    try:
        if args.cmd == "new-salt":
            print(new_salt_state(phrase))
            return 0
        key = key_from_salt_state(phrase, args.salt_state)
        print(encrypt(key, args.value) if args.cmd == "encrypt" else decrypt(key, args.value))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

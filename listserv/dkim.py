"""DKIM: the list domain's signing key, its DNS record, and the signature on every copy sent.

Invariants:
- Signatures are relaxed/relaxed, rsa-sha256 or ed25519-sha256 (RFC 6376, RFC 8463), over
  those of ``SIGNED`` that the message carries, each once, plus From a second time (an
  "oversigned" From: nobody can add a second From without breaking the signature).
- Canonicalisation, header selection and folding are dkimpy's own functions, so what is hashed
  here is what dkimpy (and every verifier that agrees with it) hashes. The private-key
  operation is OpenSSL's (``cryptography``): dkimpy's pure-Python RSA takes milliseconds per
  copy, which a fan-out to thousands of members cannot afford.
- The body hash is computed once per distinct body and kept in a small cache: every copy of a
  post has the same body and differs only in personal headers (List-Unsubscribe), so a copy
  costs one header hash and one private-key operation.
- Key files are what dkimpy and OpenDKIM read: an RSA key in PEM, or an ed25519 key as the
  base64 of its 32-byte seed. ``load_signer`` fails with ``ConfigError`` naming the key when
  the file is missing, unreadable or not a key: a server that would send unsigned mail while
  the owner believes it signs must not start.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import dkim as dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from listserv.config import Config, ConfigError

SIGNED = (b"from", b"to", b"subject", b"date", b"message-id", b"list-id", b"list-unsubscribe",
          b"list-unsubscribe-post")
_SIGNED_SET = frozenset(SIGNED)
RSA_BITS = 2048
BODY_CACHE = 32  # distinct bodies whose hash is kept (posts being fanned out at once)
_CANON = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_NAME = b"DKIM-Signature"


class Algorithm(enum.Enum):
    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def tag(self) -> bytes:
        return b"rsa-sha256" if self is Algorithm.RSA else b"ed25519-sha256"


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    algorithm: Algorithm
    private: PrivateKey

    def private_bytes(self) -> bytes:
        """The key file's contents (PKCS#1 PEM for RSA, as OpenDKIM writes; base64 seed)."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.TraditionalOpenSSL,
                                              serialization.NoEncryption())
        raw = self.private.private_bytes(serialization.Encoding.Raw,
                                         serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
        return base64.b64encode(raw) + b"\n"

    def public_b64(self) -> str:
        """The p= value: SubjectPublicKeyInfo DER for RSA, the raw 32 bytes for ed25519."""
        pub = self.private.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            der = pub.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            der = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(der).decode()

    def txt_value(self) -> str:
        k = "rsa" if self.algorithm is Algorithm.RSA else "ed25519"
        return f"v=DKIM1; k={k}; p={self.public_b64()}"


def generate(algorithm: Algorithm) -> KeyPair:
    if algorithm is Algorithm.RSA:
        return KeyPair(algorithm, rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS))
    return KeyPair(algorithm, ed25519.Ed25519PrivateKey.generate())


def parse_key(data: bytes) -> KeyPair:
    """A key file's contents as a key; ValueError says what it is not."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(text, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("a PEM key that is not RSA (ed25519 keys are the base64 of the seed)")
        if key.key_size < 1024:
            raise ValueError(f"an RSA key of {key.key_size} bits (receivers ignore under 1024)")
        return KeyPair(Algorithm.RSA, key)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("neither a PEM RSA key nor a base64 ed25519 seed") from None
    if len(raw) != 32:
        raise ValueError(f"base64 of {len(raw)} bytes, not a 32-byte ed25519 seed")
    return KeyPair(Algorithm.ED25519, ed25519.Ed25519PrivateKey.from_private_bytes(raw))


def dns_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}."


def txt_record(selector: str, domain: str, value: str) -> str:
    """The zone-file line to publish; strings of at most 255 characters (RFC 1035 5.1)."""
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
    return f"{dns_name(selector, domain)} IN TXT " + " ".join(f'"{c}"' for c in chunks)


class Signer:
    """Signs finished messages for one domain and selector; thread-safe."""

    def __init__(self, key: KeyPair, domain: str, selector: str) -> None:
        self.key = key
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self._bodies: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.body_hashes = 0  # how many bodies were hashed (a test checks the cache works)

    def __call__(self, message: bytes) -> bytes:
        return self.sign(message)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header field in front."""
        if message.count(b"\n") != message.count(b"\r\n"):  # what the wire will carry
            message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        end = message.find(b"\r\n\r\n")
        head, body = (message, b"") if end < 0 else (message[:end + 2], message[end + 4:])
        # Only the fields signed are canonicalised; their order is kept, which is all that
        # dkimpy's select_headers (the last instance of a repeated field first) looks at.
        headers = [(n, v) for n, v in dkimpy.rfc822_parse(head + b"\r\n")[0]
                   if n.lower() in _SIGNED_SET]
        present = {name.lower() for name, _ in headers}
        include = [h for h in SIGNED if h in present] + [b"from"]
        if b"from" not in present:
            raise ValueError("a message without From cannot be DKIM-signed")
        fields = [(b"v", b"1"), (b"a", self.key.algorithm.tag), (b"c", b"relaxed/relaxed"),
                  (b"d", self.domain), (b"s", self.selector),
                  (b"t", str(int(time.time())).encode()), (b"h", b" : ".join(include)),
                  (b"bh", self._body_hash(body)),
                  (b"b", b"0" * 60)]  # b= on a line of its own: refolding leaves the rest alone
        # (" : " in h=: dkimpy folds at spaces, and FWS inside a header name breaks it)
        value = dkimpy.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(_NAME))
        unsigned = (_NAME, b" " + dkimpy.RE_BTAG.sub(b"\\1", value))
        h = hashlib.sha256()
        dkimpy.hash_headers(h, _CANON, _CANON.canonicalize_headers(headers), include,
                            unsigned, dict(fields))
        fields[-1] = (b"b", base64.b64encode(self._sign_digest(h.digest())))
        signed = bytes(dkimpy.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n",
                                   namelen=len(_NAME)))
        return _NAME + b": " + signed + message

    def _sign_digest(self, digest: bytes) -> bytes:
        key = self.key.private
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return key.sign(digest)  # RFC 8463: ed25519 over the SHA-256 of the header hash input

    def _body_hash(self, body: bytes) -> bytes:
        with self._lock:
            hit = self._bodies.get(body)
            if hit is not None:
                self._bodies.move_to_end(body)
                return hit
        bh = base64.b64encode(hashlib.sha256(_CANON.canonicalize_body(body)).digest())
        with self._lock:
            self.body_hashes += 1
            self._bodies[body] = bh
            while len(self._bodies) > BODY_CACHE:
                self._bodies.popitem(last=False)
        return bh


def key_path(cfg: Config) -> Path:
    return cfg.base_dir / cfg.delivery.dkim_key_file


def default_key_file(selector: str) -> str:
    return f"var/dkim/{selector}.key"


def load_signer(cfg: Config) -> Signer | None:
    """The signer ``[delivery] dkim_selector``/``dkim_key_file`` ask for; None when signing is
    off. ConfigError (naming the key and what to do) when the key cannot be used."""
    d = cfg.delivery
    if not d.dkim_selector and not d.dkim_key_file:
        return None
    if not d.dkim_selector:
        raise ConfigError("[delivery] dkim_key_file is set but dkim_selector is not: set both to "
                          "sign, or neither")
    if not d.dkim_key_file:
        raise ConfigError(f"[delivery] dkim_selector is {d.dkim_selector!r} but dkim_key_file is "
                          f"empty: set it (e.g. {default_key_file(d.dkim_selector)!r}, written by "
                          "'commonroom dkim keygen')")
    path = key_path(cfg)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"[delivery] dkim_key_file {path} cannot be read ({e.strerror}): write "
                          f"one with 'commonroom dkim keygen --selector {d.dkim_selector}' or fix "
                          "the path or its permissions") from None
    try:
        key = parse_key(data)
    except ValueError as e:
        raise ConfigError(f"[delivery] dkim_key_file {path} is not a DKIM private key: {e}") from None
    return Signer(key, cfg.server.domain, d.dkim_selector)

"""Key pairs for signing: generation, PEM round trips, and FEP-521a Multikey encoding.

The blog signs HTTP requests with RSA (the only key type every fediverse server verifies,
https://docs.joinmastodon.org/spec/security/) and also publishes an Ed25519 key as a FEP-521a `Multikey` in
`assertionMethod`, for peers that verify RFC 9421 `ed25519` or object integrity proofs.
Pure functions over `cryptography` key objects; no storage, no network.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

RSA_KEY_BITS = 2048  # what Mastodon generates; larger keys slow every delivery for no interop gain
_ED25519_MULTICODEC = b"\xed\x01"  # multicodec "ed25519-pub", varint-encoded 0xed
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: value for value, char in enumerate(_BASE58_ALPHABET)}


def generate_rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)


def generate_ed25519_private_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def private_key_to_pem(key: PrivateKey) -> str:
    """PKCS#8, unencrypted (`-----BEGIN PRIVATE KEY-----`): the database is the secret store."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(pem: str) -> PrivateKey:
    """Read a PKCS#8 (or traditional `RSA PRIVATE KEY`) PEM; only RSA and Ed25519 are accepted."""
    try:
        key = serialization.load_pem_private_key(pem.strip().encode("ascii"), password=None)
    except (UnicodeEncodeError, TypeError, UnsupportedAlgorithm) as exc:  # TypeError: encrypted
        raise ValueError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def public_key_to_pem(key: PublicKey | PrivateKey) -> str:
    """SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), the `publicKeyPem` format.

    A private key is accepted for convenience; its public half is encoded.
    """
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def load_public_key(pem: str) -> PublicKey:
    """Read a remote actor's `publicKeyPem`: SPKI or PKCS#1 `RSA PUBLIC KEY`, RSA or Ed25519.

    Surrounding whitespace is stripped (some servers pad the JSON string). Anything else raises
    `ValueError`, so a caller can treat the key as unusable.
    """
    try:
        key = serialization.load_pem_public_key(pem.strip().encode("ascii"))
    except (UnicodeEncodeError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ValueError(f"unsupported public key type {type(key).__name__}")
    return key


def base58btc_encode(data: bytes) -> str:
    """Bitcoin-alphabet base58; each leading zero byte becomes a leading "1"."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_BASE58_ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _BASE58_INDEX:
            raise ValueError(f"{char!r} is not a base58btc character")
        number = number * 58 + _BASE58_INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def ed25519_public_key_to_multibase(pub: ed25519.Ed25519PublicKey) -> str:
    """FEP-521a `publicKeyMultibase`: "z" + base58btc(0xed 0x01 + 32 raw key bytes)."""
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + base58btc_encode(_ED25519_MULTICODEC + raw)


def multibase_to_ed25519_public_key(text: str) -> ed25519.Ed25519PublicKey:
    """Inverse of `ed25519_public_key_to_multibase`; `ValueError` for anything else."""
    if not text.startswith("z"):
        raise ValueError("publicKeyMultibase must be base58btc (start with 'z')")
    decoded = base58btc_decode(text[1:])
    if len(decoded) != 34 or not decoded.startswith(_ED25519_MULTICODEC):
        raise ValueError("publicKeyMultibase is not an ed25519-pub multikey")
    return ed25519.Ed25519PublicKey.from_public_bytes(decoded[2:])

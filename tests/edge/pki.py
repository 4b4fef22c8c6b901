"""A CA and certificates made by the test (``cryptography``), for a mosquitto with TLS and
client certificates, and the meters' signing keys."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(folder: Path) -> dict:
    """ca.pem, server.pem/.key (127.0.0.1), client.pem/.key (a head-end or a meter), rogue.pem/.key
    (signed by another CA); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def cert(cn, key, issuer_cert, issuer_key, ca=False, server=False):
        b = (x509.CertificateBuilder().subject_name(_name(cn))
             .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(cn))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                              content_commitment=False, key_encipherment=False, data_encipherment=False,
                                              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                       else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                             x509.DNSName("localhost")]), critical=False)
        return b.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())

    out = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("wattwatch test CA", ca_key, None, None, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = cert("another CA", other_key, None, None, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["ca"] = folder / "ca.pem"
    for name, server, (ic, ik) in (("server", True, (ca, ca_key)), ("client", False, (ca, ca_key)),
                                   ("rogue", False, (other, other_key))):
        k = ec.generate_private_key(ec.SECP256R1())
        c = cert(name, k, ic, ik, server=server)
        (folder / f"{name}.pem").write_bytes(c.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(_pem_key(k))
        out[name] = (folder / f"{name}.pem", folder / f"{name}.key")
    return out


def tls_listener(port: int, pki: dict) -> str:
    """mosquitto config lines: a TLS listener that requires a client certificate from the CA."""
    return (f"listener {port} 127.0.0.1\ncafile {pki['ca']}\ncertfile {pki['server'][0]}\n"
            f"keyfile {pki['server'][1]}\nrequire_certificate true\n")


def hmac_key(path: Path) -> Path:
    path.write_text(secrets.token_hex(32) + "\n")
    return path


def ed25519_keys(folder: Path, meter: str) -> tuple[Path, Path]:
    k = ed25519.Ed25519PrivateKey.generate()
    priv, pub = folder / f"{meter}.pem", folder / f"{meter}.pub.pem"
    priv.write_bytes(_pem_key(k))
    pub.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub

#!/usr/bin/env python3
"""fleetcerts.py: issues many agent certificates quickly (python3-cryptography), for fleetcerts.sh.

Usage: fleetcerts.py DIR NAME...   (names on the command line or, with '-', one per line on stdin)
Signs DIR/agent.key's public key for each NAME with DIR/ca.key, exactly as fleetcerts.sh's openssl
fallback does: subject O=epwatch, OU=agents, CN=NAME; basicConstraints CA:FALSE (critical),
keyUsage digitalSignature (critical), EKU clientAuth, subject and authority key identifiers,
365 days, a random 127-bit serial. Writes DIR/agents/NAME.crt.
"""
import datetime
import os
import secrets
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def main():
    d = sys.argv[1]
    names = sys.argv[2:]
    if names == ["-"]:
        names = [line.strip() for line in sys.stdin if line.strip()]
    with open(os.path.join(d, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(d, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(d, "agent.key"), "rb") as f:
        pub = serialization.load_pem_private_key(f.read(), None).public_key()
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    ski = x509.SubjectKeyIdentifier.from_public_key(pub)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    for name in names:
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "epwatch"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "agents"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(pub)
            .serial_number(secrets.randbits(126) | (1 << 126))
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(ski, critical=False)
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        path = os.path.join(d, "agents", name + ".crt")
        with open(path + ".tmp", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()

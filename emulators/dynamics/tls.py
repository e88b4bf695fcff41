"""Self-signed TLS material for `--tls` (azure-identity/MSAL and the official SDK need https).

A trustme CA issues a server certificate for 127.0.0.1/localhost; the CA bundle is written
next to the key pair so clients can pass it as `connection_verify` / `REQUESTS_CA_BUNDLE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class TlsFiles:
    certfile: str
    keyfile: str
    ca_bundle: str


def write_tls_files(directory: str | Path, prefix: str = "dynamics") -> TlsFiles:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    files = TlsFiles(str(d / f"{prefix}-cert.pem"), str(d / f"{prefix}-key.pem"),
                     str(d / f"{prefix}-ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(files.certfile)
    cert.private_key_pem.write_to_path(files.keyfile)
    ca.cert_pem.write_to_path(files.ca_bundle)
    return files

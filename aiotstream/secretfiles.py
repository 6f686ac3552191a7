"""Secrets (passwords, passphrases) read from files named in the site config, at start.

A site config names a file, never the secret: ``password_file = "/run/secrets/mqtt-password"``. The file is
read when the client that needs it is made; a missing, unreadable or empty file is one line naming the
config field. What a file holds never goes into a log line, an output or an error message.
"""
from __future__ import annotations

from pathlib import Path

from aiotstream.errors import AiotError


def read_secret(path: str, field: str) -> str:
    """The secret in ``path`` (its first line, without ``\n`` or ``\r\n``), or AiotError naming ``field``.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("w", delete=False) as f:
    ...     _ = f.write("s3cret\\n")
    >>> read_secret(f.name, "inputs.mqtt.password_file")
    's3cret'
    >>> os.unlink(f.name)
    >>> read_secret("/nonexistent/pw", "inputs.mqtt.password_file")
    Traceback (most recent call last):
    ...
    aiotstream.errors.AiotError: inputs.mqtt.password_file: cannot read secret file '/nonexistent/pw' \
(No such file or directory)
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AiotError(f"{field}: cannot read secret file {path!r} ({exc.strerror or type(exc).__name__})") \
            from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AiotError(f"{field}: secret file {path!r} is not UTF-8 text") from None
    secret = text.split("\n", 1)[0].removesuffix("\r")  # only \n ends it: a password may hold \f or \x85
    if not secret:
        raise AiotError(f"{field}: secret file {path!r} is empty (the secret is its first line)")
    return secret


def read_secret_bytes(path: str, field: str) -> bytes:
    """:func:`read_secret` as UTF-8 bytes (a private key's passphrase)."""
    return read_secret(path, field).encode("utf-8")

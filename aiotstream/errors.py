"""One exception hierarchy for the package.

Every message names the thing that is wrong and, where there is one, the fix.
"""
from __future__ import annotations


class AiotError(Exception):
    """Base class of every error aiotstream raises on purpose."""


class ConfigError(AiotError):
    """A site config failed to load or validate.

    ``problems`` holds one ``(path, message)`` pair per bad field, e.g.
    ``("assets[2].sample_rate_hz", "must be greater than 0 (got -5)")``.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s) in the site config:"]
        lines += [f"  {path}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class DecodeError(AiotError):
    """Input bytes could not be turned into a record.

    ``reason`` is a short machine-readable code (it goes into dead letters);
    the message says what was wrong in words.
    """

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class ModelError(AiotError):
    """A model could not be loaded, checked or used."""


class ModelRefused(ModelError):
    """A registry artifact failed verification (missing file, hash mismatch, unsigned, unknown key or bad
    signature) and must not be used; the message names the file and what failed."""


class BrokerError(AiotError):
    """The development broker could not be started or reached."""

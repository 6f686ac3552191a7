"""Who may do what: ``[auth]`` (principals, their roles, assets and keys; freshness of signed messages).

A site without the table keeps the behaviour of a site before it (unsigned control, feedback and ack
messages are accepted; `aiotstream run` from Kafka or MQTT logs a WARNING at start). With it, every control,
feedback and ack message is checked by :class:`aiotstream.auth.Verifier` (signature, freshness, replay, role
and asset); see docs/security.md.

Key files are named, never the keys: an Ed25519 public key (PEM) or an HMAC-SHA256 secret file per
principal. Paths are taken as given, relative to the working directory of the flow, like every other
``*_file`` field of the site config.

>>> from aiotstream.config import default_site
>>> from aiotstream.errors import ConfigError
>>> try:
...     default_site(1, auth={"principals": [{"id": "ana", "roles": ["operator"], "secret_file": "a"},
...                                          {"id": "bob", "roles": ["pilot"], "secret_file": "b"}]})
... except ConfigError as e:
...     print(e.problems)
[('auth.principals[1].roles[0]', "must be 'operator', 'engineer', 'model_admin', 'device', 'governance' \
or 'console' (got 'pilot')")]
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from aiotstream.config.base import _Model

ROLES = ("operator", "engineer", "model_admin", "device", "governance", "console")
"""The roles a principal can have (see :data:`ROLE_ACTIONS`)."""
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "operator": frozenset({"ack", "clear", "label"}),
    "engineer": frozenset({"approve", "reject", "maintenance"}),
    "model_admin": frozenset({"promote"}),
    "device": frozenset({"command_ack"}),
    "governance": frozenset({"erase"}),
    "console": frozenset(),  # signs on behalf of another principal, whose roles authorise the action
}
"""Role -> the message kinds (feedback types, control types) it allows."""
PRINCIPAL_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
ALL_ASSETS = "*"
Role = Literal["operator", "engineer", "model_admin", "device", "governance", "console"]
_SEP = "\x1e"  # several problems with their own paths (see config.site._problems)


class Principal(_Model):
    """``[[auth.principals]]``: one person, device or service that signs messages."""

    id: str = Field(pattern=PRINCIPAL_PATTERN,
                    description="1..64 characters: letters, digits, '.', '_', '@', '-'")
    roles: list[Role] = Field(min_length=1, description="operator, engineer, model_admin, device, "
                                                        "governance, console (see docs/security.md)")
    assets: list[Annotated[str, StringConstraints(min_length=1, max_length=140)]] = Field(
        default_factory=lambda: [ALL_ASSETS],
        description="the assets it may act on: asset ids, 'line:<line id>', or '*' (every asset, and "
                    "site-wide messages)")
    public_key_file: str | None = Field(default=None, min_length=1,
                                        description="its Ed25519 public key (PEM); or secret_file")
    secret_file: str | None = Field(default=None, min_length=1,
                                    description="file holding its HMAC-SHA256 secret (first line, at least "
                                                "16 bytes); or public_key_file")
    password_hash_file: str | None = Field(default=None, min_length=1,
                                           description="console sign-in: file holding its argon2 password "
                                                       "hash")

    @model_validator(mode="after")
    def _one_key(self) -> Principal:
        if self.public_key_file is not None and self.secret_file is not None:
            raise ValueError(f"principal {self.id!r} has both public_key_file and secret_file: give exactly "
                             "one (the key its messages are signed with)")
        if self.public_key_file is None and self.secret_file is None and self.password_hash_file is None:
            raise ValueError(f"principal {self.id!r} has neither public_key_file nor secret_file (the key "
                             "its messages are signed with) nor password_hash_file (a console user, whose "
                             "actions the console signs on its behalf): give one")
        return self


class AuthConfig(_Model):
    """``[auth]``: principals and how fresh a signed message must be."""

    required: bool = Field(default=True, description="refuse unsigned control, feedback and ack messages "
                                                     "(false: accept them, but verify signed ones)")
    max_age_s: float = Field(default=300.0, gt=0, le=86_400,
                             description="a message signed longer ago than this (worker wall clock) is "
                                         "refused as expired")
    max_future_s: float = Field(default=30.0, ge=0, le=3600,
                                description="a message signed further ahead than this is refused "
                                            "(future_auth)")
    replay_cache_size: int = Field(default=100_000, ge=1, le=10_000_000,
                                   description="nonces remembered per worker process (for max_age_s + "
                                               "max_future_s); when full, new signed messages are refused "
                                               "rather than risk a replay")
    principals: list[Principal] = Field(default_factory=list)

    @field_validator("principals")
    @classmethod
    def _unique(cls, v: list[Principal]) -> list[Principal]:
        seen: dict[str, int] = {}
        problems = []
        for i, p in enumerate(v):
            if p.id in seen:
                problems.append(f"auth.principals[{i}].id: {p.id!r} is also principals[{seen[p.id]}] "
                                "(ids must be unique)")
            seen.setdefault(p.id, i)
        if problems:
            raise ValueError(_SEP + _SEP.join(problems))
        return v

    def principal(self, pid: str) -> Principal | None:
        for p in self.principals:
            if p.id == pid:
                return p
        return None

"""A model registry: versioned, hashed, signed ONNX artifacts in a directory.

Layout (one directory per version, written once)::

    root/<name>/<version>/model.onnx
    root/<name>/<version>/manifest.json

The manifest names the artifact (``name``, ``version``), pins its bytes
(``sha256`` of ``model.onnx``), says where it came from (``created`` in ISO
UTC, ``training_data``, ``metrics``), how to feed it (``feature_names``, in
the flow's column order) and how to read it (``score``: the output to take and
how its raw values map to an anomaly score in [0, 1], see
:mod:`aiotstream.models.onnx_model`), whether it is ``quantized``, and a
``signature``: ``{"alg": "ed25519" | "hmac-sha256", "value": base64, "key_id"}``
over the canonical JSON (sorted keys, no whitespace, orjson) of the manifest
*without* its ``signature`` field. The hash is inside what is signed, so the
signature binds the model bytes too.

:meth:`ModelRegistry.load` verifies both and raises :class:`ModelRefused`
naming the file and what failed; an unsigned artifact is refused unless the
registry was opened with ``allow_unsigned=True``.

>>> import tempfile
>>> reg = ModelRegistry(tempfile.mkdtemp(), hmac_key=b"k" * 32)
>>> m = reg.publish("m", "1.0.0", b"onnx", feature_names=["a"], training_data="t", metrics={},
...                 score={"output": "scores"})
>>> reg.load("m", "1.0.0").onnx_bytes, m.signature["alg"]
(b'onnx', 'hmac-sha256')
>>> sorted_versions(["1.10.0", "1.2.0", "1.2.0-int8", "1.9.1"])
['1.2.0-int8', '1.2.0', '1.9.1', '1.10.0']

A manifest is checked field by field when it is read (:meth:`Manifest.from_dict`): a field of the wrong
type, a signature that is not ``{"alg", "value", "key_id"}`` with a base64 value of the algorithm's
length, a score block with non-finite numbers: each is a :class:`ModelRefused` naming the field, never
another exception, so a bad manifest cannot stop a flow that is asked to promote it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import orjson
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from aiotstream.errors import ModelError, ModelRefused

__all__ = ["Artifact", "DatasetCheck", "Manifest", "ModelRegistry", "canonical_json", "generate_keypair",
           "key_id", "load_signing_key", "sorted_versions", "version_key"]

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
ALGS = ("ed25519", "hmac-sha256")


# ---- versions ---------------------------------------------------------------------------------------------
def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.findall(r"\d+|[^\d.]+", text))


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key: PEP 440 order (``packaging.version``) for versions it parses (``1.0.0-rc.2`` is
    ``1.0.0rc2``); a version with a variant suffix it does not know (``1.0.0-int8``, ``1.0.0-ae``) sorts
    just before its base version, as a semver pre-release would; anything else after every version,
    compared naturally (digit runs as numbers).

    >>> sorted(["2", "10", "1.0.0-int8", "1.0.0", "1.0.0rc1", "x-1"], key=version_key)
    ['1.0.0rc1', '1.0.0-int8', '1.0.0', '2', '10', 'x-1']
    """
    try:
        return (0, Version(version), 1, ())
    except InvalidVersion:
        pass
    main, _, suffix = version.partition("-")
    try:
        return (0, Version(main), 0, _natural(suffix))
    except InvalidVersion:
        return (1, _natural(version))


def sorted_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=version_key)


# ---- manifest ---------------------------------------------------------------------------------------------
def canonical_json(obj: Any) -> bytes:
    """The bytes a signature covers: orjson, sorted keys, no whitespace."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``manifest.json`` holds (see the module docstring)."""

    name: str
    version: str
    sha256: str
    created: str
    training_data: str
    metrics: dict[str, Any]
    feature_names: list[str]
    score: dict[str, Any]
    quantized: bool = False
    signature: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form provenance (family, base version, ...)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def unsigned_dict(self) -> dict[str, Any]:
        d = self.to_dict()
        d.pop("signature")
        return d

    def signed_bytes(self) -> bytes:
        return canonical_json(self.unsigned_dict())

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest") -> Manifest:
        """Check every field (:class:`ManifestSchema`) and make the manifest from ``d`` as it is (the values
        are not converted, so the signed bytes stay the ones that were signed)."""
        if not isinstance(d, dict):
            raise ModelRefused(f"{where}: not a model manifest (a JSON object is expected, got "
                               f"{type(d).__name__})")
        names = {f.name for f in fields(cls)}
        required = names - {"quantized", "signature", "extra"}
        missing = sorted(required - set(d))
        unknown = sorted(map(str, set(d) - names))
        if missing or unknown:
            parts = ([f"missing field(s) {missing}"] if missing else []) + \
                ([f"unknown field(s) {unknown}"] if unknown else [])
            raise ModelRefused(f"{where}: not a model manifest ({'; '.join(parts)})")
        try:
            ManifestSchema.model_validate(d)
        except ValidationError as exc:
            raise ModelRefused(f"{where}: not a valid model manifest: {_problems(exc)}") from None
        return cls(**d)


SIGNATURE_BYTES = {"ed25519": 64, "hmac-sha256": 32}
"""The length of a signature value (base64-decoded) per algorithm."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SignatureSchema(_Strict):
    """``signature``: the algorithm, the base64 signature of the algorithm's length, the signer's key id."""

    alg: Literal["ed25519", "hmac-sha256"]
    value: str = Field(max_length=256)
    key_id: str = Field(pattern=r"^(ed25519|hmac):[0-9a-f]{16}$", description="see key_id()")

    @field_validator("value")
    @classmethod
    def _base64(cls, v: str, info: ValidationInfo) -> str:
        try:
            raw = base64.b64decode(v, validate=True)
        except ValueError:
            raise ValueError("is not base64") from None
        n = SIGNATURE_BYTES.get(info.data.get("alg", ""))
        if n is not None and len(raw) != n:
            raise ValueError(f"decodes to {len(raw)} bytes; an {info.data['alg']} signature has {n}")
        return v

    @field_validator("key_id")
    @classmethod
    def _kid_matches_alg(cls, v: str, info: ValidationInfo) -> str:
        alg = info.data.get("alg")
        if alg is not None and not v.startswith("ed25519:" if alg == "ed25519" else "hmac:"):
            raise ValueError(f"{v!r} is not a key id of the {alg} algorithm")
        return v


class ScoreSchema(_Strict):
    """``score``: how to feed and read the model (see :mod:`aiotstream.models.onnx_model`)."""

    input: str = Field(default="X", min_length=1, max_length=256)
    output: str = Field(default="scores", min_length=1, max_length=256)
    map: Literal["logistic"] = "logistic"
    sign: Literal[1, -1] | float = 1.0
    center: float | None = Field(default=None, allow_inf_nan=False)
    scale: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    impute: list[float] | None = Field(default=None, max_length=1 << 16)

    @field_validator("sign")
    @classmethod
    def _sign(cls, v: float) -> float:
        if v not in (1.0, -1.0):
            raise ValueError(f"must be 1 or -1, got {v!r}")
        return v

    @field_validator("impute")
    @classmethod
    def _finite(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not all(math.isfinite(x) for x in v):
            raise ValueError("every impute value must be a finite number")
        return v


class ManifestSchema(_Strict):
    """The types and ranges of every manifest field (what :meth:`Manifest.from_dict` checks)."""

    name: str = Field(pattern=_NAME.pattern)
    version: str = Field(pattern=_NAME.pattern)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: str = Field(max_length=64)
    training_data: str = Field(max_length=4096)
    metrics: dict[str, Any]
    feature_names: list[str] = Field(min_length=1, max_length=1 << 16)
    score: ScoreSchema
    quantized: bool = False
    signature: SignatureSchema | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("feature_names")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        if any(not 1 <= len(n) <= 256 for n in v) or len(set(v)) != len(v):
            raise ValueError("feature names must be unique strings of 1..256 characters")
        return v


def _problems(exc: ValidationError, root: str = "") -> str:
    """``path: message`` per bad field, e.g. ``signature.value: is not base64``."""
    out = []
    for err in exc.errors()[:8]:
        path = ".".join([root] * bool(root) + [str(p)
                                               for p in err["loc"] if not str(p).startswith("function-")])
        path = path or "<manifest>"
        msg = re.sub(r" or instance of \w+", "", err["msg"].removeprefix("Value error, "))
        out.append(f"{path}: {msg.replace('Input should be', 'must be')}")
    return "; ".join(out)


@dataclass(frozen=True, slots=True)
class Artifact:
    """A verified artifact: its manifest and the model bytes the manifest's hash and signature vouch for."""

    manifest: Manifest
    onnx_bytes: bytes
    path: Path | None = None


# ---- keys -------------------------------------------------------------------------------------------------
def _ed25519():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def _read_key_bytes(key: Path | str | bytes) -> bytes:
    if isinstance(key, bytes):
        return key
    p = Path(key)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read key file {p}: {exc.strerror}") from None


def _load_private(key: Path | str | bytes, passphrase: bytes | None = None):
    """An Ed25519 private key from a PEM file/bytes (encrypted with ``passphrase``, or not) or a raw 32-byte
    seed."""
    from cryptography.hazmat.primitives import serialization

    data = _read_key_bytes(key)
    ed = _ed25519()
    if len(data) == 32 and passphrase is None:
        return ed.Ed25519PrivateKey.from_private_bytes(data)
    try:
        k = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise ModelError("signing key is an encrypted PEM: give its passphrase in a secret file "
                             "(--signing-key-passphrase-file)") from None
        raise ModelError(f"signing key: a passphrase was given but the key is not encrypted "
                         f"({exc})") from None
    except ValueError as exc:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise ModelError("signing key: cannot decrypt the PEM with the passphrase given (wrong "
                             "passphrase?)") from None
        raise ModelError("signing key is not an Ed25519 PEM private key or a "
                         f"32-byte seed: {exc}") from None
    if not isinstance(k, ed.Ed25519PrivateKey):
        raise ModelError(f"signing key is a {type(k).__name__}, not Ed25519")
    return k


def load_signing_key(key: Path | str | bytes, passphrase: bytes | None = None) -> bytes:
    """The raw 32-byte Ed25519 seed of a signing key: a PEM (encrypted with ``passphrase``, e.g. from a
    secret file, or not) or a seed; what ``publish(signing_key=...)`` takes. ModelError says what is wrong
    (an encrypted key without a passphrase, a wrong passphrase) without the passphrase."""
    from cryptography.hazmat.primitives import serialization

    return _load_private(key, passphrase).private_bytes(serialization.Encoding.Raw,
                                                        serialization.PrivateFormat.Raw,
                                                        serialization.NoEncryption())


def _load_public(key: Path | str | bytes):
    """An Ed25519 public key from a PEM file/bytes or the raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization

    data = _read_key_bytes(key)
    ed = _ed25519()
    if len(data) == 32:
        return ed.Ed25519PublicKey.from_public_bytes(data)
    try:
        k = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"verify key is not an Ed25519 PEM public key or 32 raw bytes: {exc}") from None
    if not isinstance(k, ed.Ed25519PublicKey):
        raise ModelError(f"verify key is a {type(k).__name__}, not Ed25519")
    return k


def _raw_public(pub: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(alg: str, key: bytes) -> str:
    """A short public id of a key: for Ed25519 of the raw public key, for HMAC of the secret (hashed with a
    label, so the id says which key without giving it away).

    >>> key_id("hmac-sha256", b"secret")[:5]
    'hmac:'
    """
    if alg == "ed25519":
        return "ed25519:" + hashlib.sha256(key).hexdigest()[:16]
    return "hmac:" + hashlib.sha256(b"aiotstream-hmac-key-id\0" + key).hexdigest()[:16]


def generate_keypair(directory: Path | str, name: str = "model-signing") -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as ``<name>.key`` (PEM PKCS8, mode 0600) and ``<name>.pub`` (PEM).

    The private key signs at the training side (``publish(..., signing_key=...)``); only the public key goes
    to the sites (``ModelRegistry(root, verify_key=...)``).
    """
    from cryptography.hazmat.primitives import serialization

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = d / f"{name}.key", d / f"{name}.pub"
    for p in (priv_path, pub_path):
        if p.exists():
            raise ModelError(f"{p} exists already: refusing to overwrite a key (move it away first)")
    k = _ed25519().Ed25519PrivateKey.generate()
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


# ---- registry ---------------------------------------------------------------------------------------------
@runtime_checkable
class DatasetCheck(Protocol):
    """What the registry asks of a dataset store (:class:`~aiotstream.datasets.DatasetStore`)."""

    root: Path

    def exists(self, dataset_id: str) -> bool: ...

    def verify(self, dataset_id: str) -> Any: ...  # raises a ModelError naming what changed


def _check_name(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise ModelError(f"model {kind} {value!r} is not valid: use letters, digits, '.', '_', '+' or '-' "
                         "(max 128, not starting with a separator)")


class ModelRegistry:
    """Artifacts under ``root``; verification keys given at open (see the module docstring).

    ``verify_key``: the Ed25519 public key (PEM path, PEM bytes or 32 raw bytes) that Ed25519 signatures must
    come from, or a list of them (while signing keys rotate); ``hmac_key``: the shared secret for HMAC-SHA256
    signatures (also used to sign on publish when no
    other key is given). ``allow_unsigned=True`` accepts artifacts without a signature (tests, development).
    ``datasets``: a :class:`~aiotstream.datasets.DatasetStore` (any :class:`DatasetCheck`): then a model
    whose ``extra["dataset"]`` names a dataset the store does not hold is not published (:class:`ModelError`),
    and :meth:`load` refuses one whose dataset is unknown or fails verification (:class:`ModelRefused`).
    A store, not its directory: this module must not import :mod:`aiotstream.datasets` (which imports
    ``models``; imports point one way).
    """

    def __init__(self, root: Path | str,
                 verify_key: Path | str | bytes | list[Path | str | bytes] | None = None,
                 hmac_key: bytes | None = None, *, allow_unsigned: bool = False,
                 datasets: DatasetCheck | None = None):
        self.root = Path(root)
        if datasets is not None and not isinstance(datasets, DatasetCheck):
            raise ModelError(f"datasets={datasets!r}: give a dataset store "
                             "(aiotstream.datasets.DatasetStore), not a path")
        self.datasets = datasets
        self.hmac_key = hmac_key
        self.allow_unsigned = allow_unsigned
        keys = [] if verify_key is None else list(verify_key) if isinstance(verify_key, (list, tuple)) \
            else [verify_key]
        pubs = [_load_public(k) for k in keys]
        self._trusted = {key_id("ed25519", _raw_public(p)): p for p in pubs}  # key id -> public key
        self._hmac_id = key_id("hmac-sha256", hmac_key) if hmac_key is not None else None

    # ---- paths and listing ----
    def path(self, name: str, version: str) -> Path:
        _check_name("name", name)
        _check_name("version", version)
        return self.root / name / version

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[str]:
        """Published versions of ``name``, oldest first (:func:`version_key` order)."""
        _check_name("name", name)
        d = self.root / name
        if not d.is_dir():
            return []
        return sorted_versions([p.name for p in d.iterdir()
                                if p.is_dir() and not p.name.startswith(".")
                                and (p / MANIFEST_FILE).exists()])

    def manifest(self, name: str, version: str) -> Manifest:
        """The manifest as stored (parsed, not verified: :meth:`load` verifies)."""
        p = self.path(name, version) / MANIFEST_FILE
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise ModelRefused(f"{p}: missing file (no version {version!r} of model {name!r} in {self.root}; "
                               f"published: {self.versions(name) or 'none'})") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ModelRefused(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ModelRefused(f"{p}: not a model manifest (a JSON object is expected)")
        return Manifest.from_dict(data, where=str(p))

    # ---- publish ----
    def publish(self, name: str, version: str, onnx_bytes: bytes, *, feature_names: list[str],
                training_data: str,
                metrics: dict[str, Any], score: dict[str, Any], quantized: bool = False,
                signing_key: Path | bytes | None = None, hmac_key: bytes | None = None,
                extra: dict[str, Any] | None = None) -> Manifest:
        """Write a new version (refuses to overwrite one). Signed with ``signing_key`` (Ed25519), else
        ``hmac_key``, else the registry's ``hmac_key``; with none of them the artifact is unsigned."""
        target = self.path(name, version)
        if target.exists():
            raise ModelError(f"{target} exists: version {version!r} of model {name!r} is published already "
                             "(versions are immutable; publish a new version)")
        ds = (extra or {}).get("dataset")
        if self.datasets is not None and ds is not None and not self.datasets.exists(ds):
            raise ModelError(f"{name}/{version}: extra.dataset {ds!r} is not a dataset in "
                             f"{self.datasets.root} (make it with `aiotstream dataset create`, or open the "
                             "registry with the store that holds it)")
        m = Manifest(name=name, version=version, sha256=hashlib.sha256(onnx_bytes).hexdigest(),
                     created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                     training_data=training_data, metrics=dict(metrics), feature_names=list(feature_names),
                     score=dict(score), quantized=bool(quantized), signature=None, extra=dict(extra or {}))
        m = Manifest.from_dict(orjson.loads(canonical_json(m.to_dict())))  # what a reader will see, exactly
        body = m.signed_bytes()
        if signing_key is not None:
            k = _load_private(signing_key)
            sig = {"alg": "ed25519", "value": base64.b64encode(k.sign(body)).decode("ascii"),
                   "key_id": key_id("ed25519", _raw_public(k.public_key()))}
        elif (hmac_key or self.hmac_key) is not None:
            key = hmac_key if hmac_key is not None else self.hmac_key
            assert key is not None
            sig = {"alg": "hmac-sha256",
                   "value": base64.b64encode(hmac.digest(key, body, "sha256")).decode("ascii"),
                   "key_id": key_id("hmac-sha256", key)}
        else:
            sig = None
        d = m.to_dict()
        d["signature"] = sig
        m = Manifest.from_dict(d)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
        try:
            (tmp / MODEL_FILE).write_bytes(onnx_bytes)
            (tmp / MANIFEST_FILE).write_bytes(orjson.dumps(d,
                                                           option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
                                              + b"\n")
            os.rename(tmp, target)  # atomic: readers see a whole version or none
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(f"cannot publish {target}: {exc}") from None
        return m

    # ---- load and verify ----
    def load(self, name: str, version: str) -> Artifact:
        """Read and verify a version: the file hash, then the signature; :class:`ModelRefused` if anything
        fails."""
        d = self.path(name, version)
        m = self.manifest(name, version)
        mpath, onnx_path = d / MANIFEST_FILE, d / MODEL_FILE
        if (m.name, m.version) != (name, version):
            raise ModelRefused(f"{mpath}: manifest says {m.name}/{m.version}, but it is stored as "
                               f"{name}/{version}")
        try:
            data = onnx_path.read_bytes()
        except FileNotFoundError:
            raise ModelRefused(f"{onnx_path}: missing file (the manifest is there, "
                               "the model is not)") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != m.sha256:
            raise ModelRefused(f"{onnx_path}: hash mismatch: sha256 {digest[:16]}... but the manifest pins "
                               f"{m.sha256[:16]}... (the model bytes were changed or corrupted)")
        self.verify(m, where=str(mpath))
        self._check_dataset(m, str(mpath))
        return Artifact(m, data, d)

    def _check_dataset(self, m: Manifest, where: str) -> None:
        """With a dataset store: the dataset ``m`` was trained on is there and intact."""
        ds = m.extra.get("dataset")
        if self.datasets is None or ds is None:
            return
        if not self.datasets.exists(ds):
            raise ModelRefused(f"{where}: trained on dataset {ds!r}, which is not in {self.datasets.root} "
                               "(unknown dataset: its provenance cannot be checked)")
        try:
            self.datasets.verify(ds)
        except ModelError as exc:
            raise ModelRefused(f"{where}: its dataset {ds} failed verification: {exc}") from None

    def verify(self, m: Manifest, where: str = "manifest") -> None:
        """Check ``m``'s signature against the configured keys (raises :class:`ModelRefused`)."""
        sig = m.signature
        if sig is None:
            if self.allow_unsigned:
                return
            raise ModelRefused(f"{where}: unsigned artifact refused (sign it on publish, or open the "
                               "registry with allow_unsigned=True for development)")
        try:  # a manifest made in code (not read by from_dict) gets the same checks
            checked = SignatureSchema.model_validate(sig)
        except ValidationError as exc:
            raise ModelRefused(f"{where}: bad signature: {_problems(exc, 'signature')}") from None
        alg, kid = checked.alg, checked.key_id
        raw_sig = base64.b64decode(checked.value, validate=True)
        body = m.signed_bytes()
        if alg == "ed25519":
            if not self._trusted:
                raise ModelRefused(f"{where}: unknown key: signed with Ed25519 key {kid}, but this registry "
                                   "has no verify_key (give the signer's public key)")
            pub = self._trusted.get(kid)  # type: ignore[arg-type]
            if pub is None:
                raise ModelRefused(f"{where}: unknown key: signed with {kid}, this registry trusts "
                                   f"{', '.join(self._trusted)}")
            from cryptography.exceptions import InvalidSignature

            try:
                pub.verify(raw_sig, body)
            except InvalidSignature:
                raise ModelRefused(f"{where}: bad signature: the manifest does not match its Ed25519 "
                                   "signature (it was changed after signing)") from None
        else:
            if self.hmac_key is None:
                raise ModelRefused(f"{where}: unknown key: signed with HMAC key {kid}, but this registry "
                                   "has no hmac_key")
            if kid != self._hmac_id:
                raise ModelRefused(f"{where}: unknown key: signed with {kid}, this registry's HMAC key is "
                                   f"{self._hmac_id}")
            if not hmac.compare_digest(raw_sig, hmac.digest(self.hmac_key, body, "sha256")):
                raise ModelRefused(f"{where}: bad signature: the manifest does not match its HMAC-SHA256 "
                                   "signature (it was changed after signing)")

"""Bytes <-> records, pure (no Bytewax, no I/O): :mod:`~aiotstream.codecs.frames` (binary waveform frames
v1), :mod:`~aiotstream.codecs.readings` (JSON readings and :func:`decode_any`),
:mod:`~aiotstream.codecs.feedback` (``aiotstream.feedback/1``) and :mod:`~aiotstream.codecs.iot` (device
payloads: Sparkplug-style JSON, gateway JSON, oneM2M, OPC UA values). ``from aiotstream.codecs import ...``
gives the names of the first three."""
from __future__ import annotations

from aiotstream.codecs.feedback import (
    DEVICE_ACK_STATUSES,
    FEEDBACK_SCHEMA,
    LABELS,
    MAX_NS,
    AckFeedback,
    ApproveFeedback,
    ClearFeedback,
    CommandAckFeedback,
    FeedbackMessage,
    LabelFeedback,
    MaintenanceFeedback,
    RejectFeedback,
    decode_feedback,
)
from aiotstream.codecs.frames import (
    DTYPE_CODES,
    HEADER_SIZE,
    MAGIC,
    MAX_ASSET_ID,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MAX_SAMPLES,
    MAX_TS_NS,
    VERSION,
    decode_frame,
    encode_frame,
)
from aiotstream.codecs.readings import decode_any, decode_reading, encode_reading

__all__ = [
    "DEVICE_ACK_STATUSES",
    "DTYPE_CODES",
    "FEEDBACK_SCHEMA",
    "HEADER_SIZE",
    "LABELS",
    "MAGIC",
    "MAX_ASSET_ID",
    "MAX_CHANNELS",
    "MAX_NS",
    "MAX_SAMPLES",
    "MAX_SAMPLE_RATE",
    "MAX_TS_NS",
    "VERSION",
    "AckFeedback",
    "ApproveFeedback",
    "ClearFeedback",
    "CommandAckFeedback",
    "FeedbackMessage",
    "LabelFeedback",
    "MaintenanceFeedback",
    "RejectFeedback",
    "decode_any",
    "decode_feedback",
    "decode_frame",
    "decode_reading",
    "encode_frame",
    "encode_reading",
]

"""The site model, split by concern; ``from aiotstream.config import SiteConfig`` (or any name below) is the
public way in.

- :mod:`~aiotstream.config.base`: the strict base model, number bounds, severities, alert types, time helpers;
- :mod:`~aiotstream.config.assets`: the site, its assets and asset groups;
- :mod:`~aiotstream.config.inputs`: Kafka, MQTT (TLS, authentication), OPC UA and file inputs;
- :mod:`~aiotstream.config.detection`: windows, features, models (online, ONNX, the validation gate);
- :mod:`~aiotstream.config.kpi`: KPI periods, shifts and metrics;
- :mod:`~aiotstream.config.decisions`: alerts and alert rules, maintenance windows, control;
- :mod:`~aiotstream.config.outputs`: output topics, MQTT device topics, Parquet;
- :mod:`~aiotstream.config.governance`: retention, classification, PII policy, erasure; OpenLineage events;
- :mod:`~aiotstream.config.auth`: principals, roles, keys and freshness of signed messages (``[auth]``);
- :mod:`~aiotstream.config.building`: the building flow's zones, meters, baseline and waste rules;
- :mod:`~aiotstream.config.site`: :class:`SiteConfig` (cross-references, hash, JSON schema), loading TOML,
  YAML or JSON with every bad field's path, and :func:`default_site`.
"""
from __future__ import annotations

from aiotstream.config.assets import AssetConfig, AssetGroup, SiteInfo
from aiotstream.config.auth import ROLE_ACTIONS, ROLES, AuthConfig, Principal
from aiotstream.config.base import (
    ALERT_TYPE_ANOMALY,
    ALERT_TYPE_COMMAND_FAILED,
    ALERT_TYPE_DRIFT,
    ALERT_TYPE_SCALAR,
    MAX_DURATION_S,
    MAX_INT,
    MAX_REAL,
    MAX_WINDOWS_PER_INPUT,
    MIN_DURATION_S,
    SEVERITIES,
    Severity,
)
from aiotstream.config.building import (
    FLOW_ENERGY,
    WASTE_TYPES,
    BaselineConfig,
    BuildingConfig,
    MeterNames,
    WasteConfig,
    ZoneConfig,
    ZoneGroup,
)
from aiotstream.config.decisions import (
    ActionConfig,
    ActuatorConfig,
    AlertConfig,
    AlertRuleConfig,
    ConditionConfig,
    ControlConfig,
    ControlRuleConfig,
    InterlockConfig,
    MaintenanceConfig,
)
from aiotstream.config.detection import (
    FeatureConfig,
    GateConfig,
    LoopConfig,
    ModelConfig,
    OnnxConfig,
    ScalarConfig,
    WindowConfig,
)
from aiotstream.config.governance import (
    CLASSIFICATIONS,
    OUTPUT_KINDS,
    GovernanceConfig,
    LineageConfig,
    retention_seconds,
)
from aiotstream.config.inputs import (
    FileColumns,
    FileInput,
    InputConfig,
    KafkaSecurity,
    MqttConnection,
    MqttInput,
    MqttSubscription,
    OpcUaInput,
    OpcUaNode,
    OpcUaServer,
    PayloadFormat,
    TlsConfig,
)
from aiotstream.config.kpi import KPI_NAMES, KpiConfig, ShiftConfig
from aiotstream.config.outputs import MqttOutput, OpcUaOutput, OpcUaWrite, OutputConfig, ParquetOutput
from aiotstream.config.site import FORMATS, MAX_CONFIG_BYTES, SiteConfig, default_site, parse_config_text

__all__ = [
    "ALERT_TYPE_ANOMALY",
    "ALERT_TYPE_COMMAND_FAILED",
    "ALERT_TYPE_DRIFT",
    "ALERT_TYPE_SCALAR",
    "CLASSIFICATIONS",
    "FLOW_ENERGY",
    "FORMATS",
    "KPI_NAMES",
    "MAX_CONFIG_BYTES",
    "MAX_DURATION_S",
    "MAX_INT",
    "MAX_REAL",
    "MAX_WINDOWS_PER_INPUT",
    "MIN_DURATION_S",
    "OUTPUT_KINDS",
    "ROLES",
    "ROLE_ACTIONS",
    "SEVERITIES",
    "WASTE_TYPES",
    "ActionConfig",
    "ActuatorConfig",
    "AlertConfig",
    "AlertRuleConfig",
    "AssetConfig",
    "AssetGroup",
    "AuthConfig",
    "BaselineConfig",
    "BuildingConfig",
    "ConditionConfig",
    "ControlConfig",
    "ControlRuleConfig",
    "FeatureConfig",
    "FileColumns",
    "FileInput",
    "GateConfig",
    "GovernanceConfig",
    "InputConfig",
    "InterlockConfig",
    "KafkaSecurity",
    "KpiConfig",
    "LineageConfig",
    "LoopConfig",
    "MaintenanceConfig",
    "MeterNames",
    "ModelConfig",
    "MqttConnection",
    "MqttInput",
    "MqttOutput",
    "MqttSubscription",
    "OnnxConfig",
    "OpcUaInput",
    "OpcUaNode",
    "OpcUaOutput",
    "OpcUaServer",
    "OpcUaWrite",
    "OutputConfig",
    "ParquetOutput",
    "PayloadFormat",
    "Principal",
    "ScalarConfig",
    "Severity",
    "ShiftConfig",
    "SiteConfig",
    "SiteInfo",
    "TlsConfig",
    "WasteConfig",
    "WindowConfig",
    "ZoneConfig",
    "ZoneGroup",
    "default_site",
    "parse_config_text",
    "retention_seconds",
]

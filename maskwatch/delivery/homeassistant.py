"""Home Assistant MQTT discovery: the retained config payloads that make each camera a device with a
compliance sensor and a violation binary sensor (https://www.home-assistant.io/integrations/mqtt/)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def object_id(camera: str) -> str:
    """``maskwatch_<camera>`` with characters Home Assistant ids may not hold (``.``) made ``_``."""
    return "maskwatch_" + _NOT_ID.sub("_", camera)


@dataclass(frozen=True)
class Topics:
    """Every MQTT topic maskwatch publishes, under ``prefix`` (``mqtt.topic_prefix``)."""

    prefix: str = "maskwatch"
    discovery_prefix: str = "homeassistant"

    @property
    def available(self) -> str:
        """``online`` (retained) while the sink runs; ``offline`` on a clean stop or as the last will."""
        return f"{self.prefix}/available"

    @property
    def violations(self) -> str:
        """Every document of the violations stream, every camera."""
        return f"{self.prefix}/violations"

    def camera_violations(self, camera: str) -> str:
        """Every document of one camera."""
        return f"{self.prefix}/{camera}/violations"

    def state(self, camera: str) -> str:
        """One camera's retained state (JSON), every ``state_interval_s`` and right after a violation."""
        return f"{self.prefix}/{camera}/state"

    def compliance_config(self, camera: str) -> str:
        return f"{self.discovery_prefix}/sensor/{object_id(camera)}_compliance/config"

    def violation_config(self, camera: str) -> str:
        return f"{self.discovery_prefix}/binary_sensor/{object_id(camera)}_violation/config"


def _common(topics: Topics, camera: str, version: str) -> dict[str, Any]:
    oid = object_id(camera)
    return {
        "state_topic": topics.state(camera),
        "json_attributes_topic": topics.state(camera),
        "availability_topic": topics.available,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [oid],
            "name": f"maskwatch {camera}",
            "manufacturer": "maskwatch",
            "model": "camera",
            "sw_version": version,
        },
        "origin": {"name": "maskwatch", "sw_version": version},
    }


def discovery_configs(topics: Topics, camera: str, version: str) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config payload for ``camera``'s two entities."""
    oid = object_id(camera)
    compliance = {
        "name": "Mask compliance",
        "unique_id": f"{oid}_compliance",
        "object_id": f"{oid}_compliance",
        "value_template": "{{ value_json.compliance }}",  # null -> None -> unknown
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "icon": "mdi:face-mask",
        **_common(topics, camera, version),
    }
    violation = {
        "name": "Mask violation",
        "unique_id": f"{oid}_violation",
        "object_id": f"{oid}_violation",
        "device_class": "problem",
        "value_template": "{{ 'ON' if value_json.violation else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        **_common(topics, camera, version),
    }
    return {topics.compliance_config(camera): compliance, topics.violation_config(camera): violation}

"""The deployment manifests for real clusters, checked against their schemas since no cloud is reachable here.

``cluster.yaml`` (Ray's cluster launcher) against the JSON schema Ray validates it with (``ray up`` reads
``ray/autoscaler/ray-schema.json``); ``deploy/rayservice.yaml`` (KubeRay) against the RayService CRD's
structure, its ``serveConfigV2`` against Serve's own schema, and both against each other and against
``deploy/serve.yaml``, so that the three describe one deployment.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).resolve().parent.parent
# Flags KubeRay sets itself on `ray start` (the head's port and the workers' address come from its services).
KUBERAY_OWN_FLAGS = {"port", "address", "autoscaling-config", "head"}
# The fields of a RayService's spec in the CRD (ray.io/v1).
RAYSERVICE_SPEC_FIELDS = {
    "serveConfigV2",
    "rayClusterConfig",
    "upgradeStrategy",
    "serviceUnhealthySecondThreshold",
    "deploymentUnhealthySecondThreshold",
    "serveService",
    "excludeHeadPodFromServeSvc",
}


def _load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


def _ray_version() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [re.fullmatch(r"ray\[[a-z,]+\]==([\d.]+)", dep) for dep in deps]
    versions = [pin.group(1) for pin in pins if pin]
    assert len(versions) == 1, deps
    return versions[0]


def _start_flags(command: str) -> dict[str, str]:
    """`ray start --a=1 --b` → {"a": "1", "b": "true"}, as KubeRay's rayStartParams writes flags."""
    words = shlex.split(command)
    assert words[1:2] == ["start"], command
    flags = {}
    for word in words[2:]:
        name, _, value = word.removeprefix("--").partition("=")
        flags[name] = value or "true"
    return flags


@pytest.fixture(scope="module")
def rayservice() -> dict[str, Any]:
    return _load("deploy/rayservice.yaml")


def test_cluster_yaml_passes_rays_cluster_config_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = _load("cluster.yaml")
    jsonschema.validate(config, schema)  # raises with the offending field
    assert config["max_workers"] >= len(config["provider"]["worker_ips"])


def test_rayservice_has_the_crds_structure(rayservice: dict[str, Any]) -> None:
    assert rayservice["apiVersion"] == "ray.io/v1"
    assert rayservice["kind"] == "RayService"
    assert rayservice["metadata"]["name"]
    spec = rayservice["spec"]
    assert set(spec) <= RAYSERVICE_SPEC_FIELDS, set(spec) - RAYSERVICE_SPEC_FIELDS
    assert isinstance(spec["serveConfigV2"], str)  # the CRD takes it as a YAML string
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == _ray_version()
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), "rayStartParams are strings"
        containers = group["template"]["spec"]["containers"]
        assert containers, group
        for container in containers:
            assert container["name"] and container["image"].endswith(f":ray{_ray_version()}-py311")
            assert container["resources"]["limits"]["cpu"], "Ray sizes a pod's node from its CPU limit"
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_image_is_rays_own_at_the_pinned_version() -> None:
    base = re.search(r"^FROM (\S+)$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    assert base and base.group(1) == f"rayproject/ray:{_ray_version()}-py311"


def test_serve_config_v2_is_a_serve_config_and_the_same_as_serve_yaml(rayservice: dict[str, Any]) -> None:
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)  # raises with the offending field
    assert config == _load("deploy/serve.yaml")


def test_rayservice_starts_ray_as_cluster_yaml_does(rayservice: dict[str, Any]) -> None:
    launcher = _load("cluster.yaml")
    cluster = rayservice["spec"]["rayClusterConfig"]
    (head,) = launcher["head_start_ray_commands"]
    (worker,) = launcher["worker_start_ray_commands"]
    assert {k: v for k, v in _start_flags(head).items() if k not in KUBERAY_OWN_FLAGS} == cluster["headGroupSpec"][
        "rayStartParams"
    ]
    for group in cluster["workerGroupSpecs"]:
        assert {k: v for k, v in _start_flags(worker).items() if k not in KUBERAY_OWN_FLAGS} == group["rayStartParams"]
        assert group["maxReplicas"] == launcher["max_workers"]


def test_every_node_spreads_the_actors(rayservice: dict[str, Any]) -> None:
    """Both manifests set RAY_SCHEDULING=SPREAD on every node (docs/operations.md, "Running on a Ray cluster")."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            assert {"name": "RAY_SCHEDULING", "value": "SPREAD"} in container["env"]
    assert "RAY_SCHEDULING=SPREAD" in (ROOT / "cluster.yaml").read_text()

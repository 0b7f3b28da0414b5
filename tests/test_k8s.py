"""deploy/k8s: every manifest parses and validates offline; the manifests agree with maskwatch and each other.

Built-in kinds are validated by ``kubernetes_validate`` (strict: unknown fields fail) against the Kubernetes
schemas shipped in its wheel; KEDA kinds by ``jsonschema`` against the CRD schemas in deploy/k8s/schemas
(made strict here too: an object schema that lists properties and does not preserve unknown fields gets
``additionalProperties: false``, as the API server's pruning would silently drop a misspelt field).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
KUBERNETES_VERSION = "1.33.0"  # a recent release whose schemas kubernetes-validate ships
KEDA_SCHEMAS = {
    "ScaledObject": "keda.sh_scaledobject_v1alpha1.json",
    "TriggerAuthentication": "keda.sh_triggerauthentication_v1alpha1.json",
}
STAGES = ("ingest", "worker", "publisher")
MASKWATCH = Path(sys.executable).with_name("maskwatch")


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _all_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in _manifest_files() for d in _docs(p)]


def _kustomized() -> list[dict[str, Any]]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    return [d for name in kust["resources"] for d in _docs(K8S / name)]


def _find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def _stage_of(container: dict[str, Any]) -> str:
    return container["args"][0]


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 CRD schema that rejects unknown fields where Kubernetes would prune them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _keda_errors(doc: dict[str, Any]) -> list[str]:
    schema = _strict(json.loads((SCHEMAS / KEDA_SCHEMAS[doc["kind"]]).read_text(encoding="utf-8")))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _validate_config(
    text: str, tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    path = tmp_path / "maskwatch.yml"
    path.write_text(text, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
    return subprocess.run(
        [str(MASKWATCH), "validate-config", str(path)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _config_text() -> str:
    (cm,) = _find([d for _, d in _all_docs()], "ConfigMap", "maskwatch-config")
    return cm["data"]["maskwatch.yml"]


def _secret() -> dict[str, str]:
    (secret,) = _find([d for _, d in _all_docs()], "Secret", "maskwatch-secrets")
    return secret["stringData"]


# --- parsing and schemas ------------------------------------------------------------------------------


def test_every_manifest_parses_and_has_a_kind():
    files = _manifest_files()
    assert len(files) >= 8
    for path, doc in _all_docs():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
        assert doc["metadata"].get("name"), path.name


def test_kustomization_lists_existing_files_and_unique_objects():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    for name in kust["resources"]:
        assert (K8S / name).is_file(), name
    listed = {name for name in kust["resources"]}
    # every manifest is either listed or the documented alternative to one
    assert {p.name for p in _manifest_files()} - listed == {"worker-gpu.yaml"}
    keys = [(d["kind"], d["metadata"]["name"]) for d in _kustomized()]
    assert len(keys) == len(set(keys)), keys
    for doc in _kustomized():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == kust["namespace"], doc["metadata"]["name"]


def test_builtin_kinds_validate_strictly():
    checked = 0
    for path, doc in _all_docs():
        if doc["kind"] in KEDA_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:  # pragma: no cover - a failure message
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
        checked += 1
    assert checked >= 10


def test_kubernetes_validate_rejects_a_broken_deployment():
    (worker,) = _find(_kustomized(), "Deployment", "worker")
    broken = copy.deepcopy(worker)
    _containers(broken)[0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    misspelt = copy.deepcopy(worker)
    misspelt["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)


def test_keda_kinds_validate_against_the_crd_schemas():
    keda = [(p, d) for p, d in _all_docs() if d["kind"] in KEDA_SCHEMAS]
    assert {d["kind"] for _, d in keda} == set(KEDA_SCHEMAS)
    for path, doc in keda:
        assert doc["apiVersion"] == "keda.sh/v1alpha1", path.name
        assert _keda_errors(doc) == [], path.name


def test_keda_schema_rejects_broken_objects():
    (so,) = _find(_kustomized(), "ScaledObject")
    missing = copy.deepcopy(so)
    del missing["spec"]["scaleTargetRef"]
    assert _keda_errors(missing)
    wrong_type = copy.deepcopy(so)
    wrong_type["spec"]["maxReplicaCount"] = "eight"
    assert _keda_errors(wrong_type)
    misspelt = copy.deepcopy(so)
    misspelt["spec"]["maxReplicas"] = 8
    assert _keda_errors(misspelt)
    (ta,) = _find(_kustomized(), "TriggerAuthentication")
    bad = copy.deepcopy(ta)
    del bad["spec"]["secretTargetRef"][0]["key"]
    assert _keda_errors(bad)


def test_keda_schemas_state_their_origin():
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert "kedacore/keda" in readme and "Apache" in readme
    assert re.search(r"\b[0-9a-f]{40}\b", readme)
    for name in KEDA_SCHEMAS.values():
        assert json.loads((SCHEMAS / name).read_text(encoding="utf-8"))["type"] == "object"


# --- cross-checks -------------------------------------------------------------------------------------


def test_scaledobject_targets_the_worker_deployment_on_the_frames_streams():
    docs = _kustomized()
    (so,) = _find(docs, "ScaledObject")
    target = so["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    (deployment,) = _find(docs, "Deployment", target["name"])
    assert {_stage_of(c) for c in _containers(deployment)} == {"worker"}
    assert (
        so["spec"]["minReplicaCount"] >= 1 and so["spec"]["maxReplicaCount"] > so["spec"]["minReplicaCount"]
    )
    config = yaml.safe_load(_config_text())
    cameras = {c["id"] for c in config["cameras"]}
    auth_names = {d["metadata"]["name"] for d in _find(docs, "TriggerAuthentication")}
    streams = set()
    for trigger in so["spec"]["triggers"]:
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == config.get("worker", {}).get("group", "workers")
        assert int(meta.get("streamLength") or meta["pendingEntriesCount"]) > 0
        assert meta["address"].split(".")[0] == "redis"
        assert trigger["authenticationRef"]["name"] in auth_names
        streams.add(meta["stream"])
    assert streams == {f"maskwatch:frames:{c}" for c in cameras}
    (ta,) = _find(docs, "TriggerAuthentication")
    for ref in ta["spec"]["secretTargetRef"]:
        assert ref["key"] in _secret(), ref


def test_probes_check_their_own_stage():
    deployments = [d for _, d in _all_docs() if d["kind"] == "Deployment"]
    assert {_stage_of(c) for d in deployments for c in _containers(d)} == {*STAGES, "api"}
    for doc in deployments:
        for c in _containers(doc):
            stage = _stage_of(c)
            probes = [c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c]
            assert len(probes) >= 2, doc["metadata"]["name"]
            for probe in probes:
                command = " ".join(probe["exec"]["command"])
                assert re.search(rf"\bmaskwatch check {stage}\b", command), (doc["metadata"]["name"], command)
                assert probe["timeoutSeconds"] >= 5
                if "--instance" in command:
                    # the instance checked is the consumer name the stage was given
                    assert '--instance "$POD_NAME"' in command
                    env = {e["name"]: e for e in c["env"]}
                    named = env.get(f"MASKWATCH_{stage.upper()}__CONSUMER") or env["MASKWATCH_INSTANCE"]
                    assert named["value"] == "$(POD_NAME)"
                    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_env_vars_are_ones_maskwatch_reads():
    from maskwatch.config.settings import Settings

    def known(keys: list[str]) -> bool:
        model: Any = Settings
        for key in keys:
            fields = getattr(model, "model_fields", None)
            if fields is None or key not in fields:
                return False
            model = fields[key].annotation
        return True

    names = set()
    for _, doc in _all_docs():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in _containers(doc):
            for e in c.get("env", []):
                name = e["name"]
                if not name.startswith("MASKWATCH_"):
                    continue
                names.add(name)
                keys = name[len("MASKWATCH_") :].removesuffix("_FILE").lower().split("__")
                assert known(keys), name
    assert {"MASKWATCH_REDIS_URL_FILE", "MASKWATCH_WORKER__CONSUMER", "MASKWATCH_CAMERAS"} <= names
    assert not known(["worker", "consumers"])  # the check itself can fail


def test_mounted_files_and_secret_keys_exist():
    docs = _kustomized()
    secret = _secret()
    for doc in [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]:
        spec = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "maskwatch-secrets" and ref["key"] in secret, e["name"]
                if e["name"].endswith("_FILE"):
                    folder, key = e["value"].rsplit("/", 1)
                    (vol,) = [n for n, p in mounts.items() if p == folder]
                    assert volumes[vol]["secret"]["secretName"] == "maskwatch-secrets"
                    assert key in secret
            if "--config" in c.get("args", []):
                path = c["args"][c["args"].index("--config") + 1]
                folder, name = path.rsplit("/", 1)
                (vol,) = [n for n, p in mounts.items() if p == folder]
                (cm,) = _find(docs, "ConfigMap", volumes[vol]["configMap"]["name"])
                assert name in cm["data"]


def test_ingest_cameras_exist_and_each_is_read_once():
    config = yaml.safe_load(_config_text())
    ids = [c["id"] for c in config["cameras"]]
    seen: list[str] = []
    for _, doc in _all_docs():
        if doc["kind"] != "Deployment":
            continue
        for c in _containers(doc):
            if _stage_of(c) == "ingest":
                assert doc["spec"]["replicas"] == 1
                args = c["args"]
                seen += [args[i + 1] for i, a in enumerate(args) if a == "--camera"]
    assert sorted(seen) == sorted(ids)


def test_publisher_is_single_with_a_rwo_claim():
    docs = _kustomized()
    (pub,) = _find(docs, "Deployment", "publisher")
    assert pub["spec"]["replicas"] == 1 and pub["spec"]["strategy"]["type"] == "Recreate"
    claim = pub["spec"]["template"]["spec"]["volumes"][-1]["persistentVolumeClaim"]["claimName"]
    (pvc,) = _find(docs, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    config = yaml.safe_load(_config_text())
    mounts = {m["mountPath"] for m in _containers(pub)[0]["volumeMounts"]}
    assert config["clips"]["dir"] in mounts
    (api,) = [c for c in _containers(pub) if _stage_of(c) == "api"]  # beside the publisher, same claim
    (clips,) = [m for m in api["volumeMounts"] if m["mountPath"] == config["clips"]["dir"]]
    assert clips["readOnly"] is True
    (svc,) = _find(docs, "Service", "api")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_metrics_services_match_the_configured_ports():
    docs = _kustomized()
    config = yaml.safe_load(_config_text())
    for stage in STAGES:
        (svc,) = [
            d
            for d in _find(docs, "Service")
            if d["spec"]["selector"]["app.kubernetes.io/name"] == stage and d["metadata"]["name"] != "api"
        ]
        assert [p["port"] for p in svc["spec"]["ports"]] == [config[stage]["metrics_port"]]
    (worker_svc,) = _find(docs, "Service", "worker-metrics")
    assert worker_svc["spec"]["clusterIP"] == "None"  # headless: one record per replica


def test_redis_is_durable_and_bounded():
    docs = _kustomized()
    (sts,) = _find(docs, "StatefulSet", "redis")
    (c,) = _containers(sts)
    assert re.match(r"redis:7(\.|$|-)", c["image"])
    args = c["args"]
    opts = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
    assert opts["--appendonly"] == "yes" and opts["--appendfsync"] == "everysec"
    assert opts["--maxmemory-policy"] == "noeviction"
    maxmemory = re.fullmatch(r"(\d+)(mb|gb)", opts["--maxmemory"])
    assert maxmemory
    max_mib = int(maxmemory[1]) * (1024 if maxmemory[2] == "gb" else 1)
    limit = c["resources"]["limits"]["memory"]
    limit_mib = (
        int(limit.removesuffix("Mi")) if limit.endswith("Mi") else int(limit.removesuffix("Gi")) * 1024
    )
    assert limit_mib >= max_mib * 1.25  # headroom for the AOF rewrite's fork
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    url = _secret()["redis-url"]
    assert url.endswith("@redis:6379/0") and f":{_secret()['redis-password']}@" in url


def test_gpu_worker_differs_only_where_it_should():
    (cpu,) = _find(_docs(K8S / "worker.yaml"), "Deployment")
    (gpu,) = _find(_docs(K8S / "worker-gpu.yaml"), "Deployment")
    (gc,) = _containers(gpu)
    assert gc["image"].endswith(":gpu") and gc["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["metadata"]["name"] == cpu["metadata"]["name"]  # the ScaledObject scales either
    assert _containers(cpu)[0]["args"] == gc["args"]
    assert _containers(cpu)[0]["livenessProbe"] == gc["livenessProbe"]


# --- the configuration in the ConfigMap and the Secret -------------------------------------------------


def test_configmap_config_validates(tmp_path):
    result = _validate_config(_config_text(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_broken_configmap_config_fails(tmp_path):
    config = yaml.safe_load(_config_text())
    config["worker"]["max_batchh"] = 16
    config["cameras"][0]["fps"] = -1
    result = _validate_config(yaml.safe_dump(config), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "max_batchh" in result.stdout + result.stderr


def test_secret_cameras_validate_and_match_the_configmap(tmp_path):
    cameras = json.loads(_secret()["cameras.json"])
    config = yaml.safe_load(_config_text())
    strip = [{k: v for k, v in c.items() if k != "url"} for c in cameras]
    assert strip == [{k: v for k, v in c.items() if k != "url"} for c in config["cameras"]]
    env = {"MASKWATCH_CAMERAS": _secret()["cameras.json"]}
    assert _validate_config(_config_text(), tmp_path, env).returncode == 0
    broken = json.dumps([{**cameras[0], "id": "bad id!"}])
    assert _validate_config(_config_text(), tmp_path, {"MASKWATCH_CAMERAS": broken}).returncode != 0

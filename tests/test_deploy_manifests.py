"""The Kubernetes manifests: both overlays rendered by the real `kubectl kustomize`, every
object validated against the Kubernetes schemas (kubernetes-validate), and the invariants a
deployment of model servers relies on."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from safetypairs.serving.containers import HTTP_PORT, WRITABLE
from safetypairs.serving.settings import EditSettings, GuardSettings, JudgeSettings, env_name

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
OVERLAYS = ("cpu", "gpu")
SETTINGS = {"guard": GuardSettings, "judge": JudgeSettings, "edit": EditSettings}
GPU = "nvidia.com/gpu"


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the manifests"
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def service_of(name: str) -> str:
    return name.removeprefix("safetypairs-").removesuffix("-settings").removesuffix("-grpc")


def test_every_object_validates_against_the_kubernetes_schemas(rendered) -> None:
    _, objects = rendered
    version = kubernetes_validate.utils.latest_version()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_refuses_a_broken_object(rendered) -> None:
    _, objects = rendered
    broken = of_kind(objects, "Deployment")["safetypairs-guard"]
    broken = yaml.safe_load(yaml.safe_dump(broken))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = "lots"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.utils.latest_version(), True)


def test_one_deployment_and_two_services_per_model_service(rendered) -> None:
    _, objects = rendered
    deployments = of_kind(objects, "Deployment")
    services = of_kind(objects, "Service")
    assert set(deployments) == {f"safetypairs-{s}" for s in SETTINGS}
    for name in SETTINGS:
        http, grpc = services[f"safetypairs-{name}"], services[f"safetypairs-{name}-grpc"]
        assert http["spec"]["type"] == "ClusterIP" and "clusterIP" not in http["spec"]
        assert grpc["spec"]["clusterIP"] == "None"  # headless: client-side balancing
        grpc_port = int(
            of_kind(objects, "ConfigMap")[f"safetypairs-{name}-settings"]["data"][
                "SAFETYPAIRS_GRPC_PORT"
            ]
        )
        assert [p["port"] for p in grpc["spec"]["ports"]] == [grpc_port]
    assert set(of_kind(objects, "PodDisruptionBudget")) == set(deployments)
    [hpa] = of_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "safetypairs-guard"
    assert "replicas" not in deployments["safetypairs-guard"]["spec"]  # the HPA owns it


def test_containers_have_probes_limits_and_a_locked_down_context(rendered) -> None:
    _, objects = rendered
    for name, dep in of_kind(objects, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        mounts_needed = set()
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{c['name']}"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in c, f"{where} lacks a {probe}"
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]), where
            assert {"cpu", "memory"} <= set(res["limits"]), where
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc.get("privileged"), where
            mounts_needed |= {m["mountPath"] for m in c["volumeMounts"]}
        # Writable places on a read-only root: /tmp, BentoML's home, the service's home.
        env = {e["name"]: e.get("value") for e in pod["containers"][0].get("env", [])}
        settings = of_kind(objects, "ConfigMap")[f"{name}-settings"]["data"]
        assert {"/tmp", env["BENTOML_HOME"], settings["SAFETYPAIRS_HOME"]} <= mounts_needed


def test_grace_period_covers_prestop_and_drain(rendered) -> None:
    _, objects = rendered
    configs = of_kind(objects, "ConfigMap")
    for name, dep in of_kind(objects, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        [c] = pod["containers"]
        command = c["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        drain = float(configs[f"{name}-settings"]["data"]["SAFETYPAIRS_SHUTDOWN_GRACE_S"])
        assert pod["terminationGracePeriodSeconds"] >= float(command[1]) + drain + 5, name


def test_gpus_only_for_judge_and_edit_in_the_gpu_overlay(rendered) -> None:
    overlay, objects = rendered
    for name, dep in of_kind(objects, "Deployment").items():
        [c] = dep["spec"]["template"]["spec"]["containers"]
        gpus = c["resources"]["limits"].get(GPU)
        wants_gpu = overlay == "gpu" and service_of(name) in ("judge", "edit")
        assert gpus == (1 if wants_gpu else None), f"{overlay}: {name} has {GPU}={gpus}"


def test_settings_use_their_one_name(rendered) -> None:
    """ConfigMap keys (and any SAFETYPAIRS_* env entry) are real settings of that service."""
    _, objects = rendered
    deployments = of_kind(objects, "Deployment")
    for name, cm in of_kind(objects, "ConfigMap").items():
        service = service_of(name)
        known = {env_name(f.name) for f in dataclasses.fields(SETTINGS[service])}
        assert set(cm["data"]) <= known, f"{name}: not settings: {set(cm['data']) - known}"
        env = {e["name"]: e.get("value") for e in _container(deployments, service).get("env", [])}
        unknown = {k for k in env if k.startswith("SAFETYPAIRS_")} - known
        assert not unknown, f"{service}: env entries that are no settings: {unknown}"
        # The values parse as the service would parse them at start-up.
        SETTINGS[service].from_env(cm["data"])
        assert cm["data"]["SAFETYPAIRS_LOG_FORMAT"] == "json"


def test_secrets_are_mounted_files_the_settings_name(rendered) -> None:
    _, objects = rendered
    configs = of_kind(objects, "ConfigMap")
    for name, dep in of_kind(objects, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        data = configs[f"{name}-settings"]["data"]
        files = [data[k] for k in data if k.endswith("_FILE") and data[k]]
        assert files, name
        for path in files:
            owners = [v for v, m in mounts.items() if path.startswith(m + "/")]
            assert owners and owners[0] in secrets, f"{name}: {path} is not in a Secret"


def test_each_deployment_runs_its_services_image_on_the_images_ports(rendered) -> None:
    """The images bin/build-images makes (the GPU overlay: the judge's and editor's GPU images),
    their two ports, and an emptyDir on every path the images write to."""
    overlay, objects = rendered
    deployments = of_kind(objects, "Deployment")
    for service, settings in SETTINGS.items():
        container = _container(deployments, service)
        gpu = "-gpu" if overlay == "gpu" and service != "guard" else ""
        assert container["image"].rsplit("/", 1)[-1] == f"safetypairs-{service}{gpu}:0.1.0"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": HTTP_PORT, "grpc": settings.grpc_port}, service
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", *WRITABLE} <= mounts, service


def _container(deployments: dict[str, dict[str, Any]], service: str) -> dict[str, Any]:
    return deployments[f"safetypairs-{service}"]["spec"]["template"]["spec"]["containers"][0]

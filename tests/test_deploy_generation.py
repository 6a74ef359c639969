"""The generation manifests (issue 20): the Indexed Job and the merge Job, rendered by the real
`kubectl kustomize` from their overlays, validated against the Kubernetes schemas, and checked
against what the command line and the services' manifests actually are: the Job's arguments
parse with the real parser once Kubernetes has expanded them, its shard count is the one the
CLI reads, and its targets are the headless Services of deploy/base."""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

import kubernetes_validate
import pytest
from test_deploy_manifests import of_kind, render

from safetypairs.cli import build_parser
from safetypairs.cli.pairs import _default_shard

OVERLAYS = ("generation", "generation-merge")


@pytest.fixture(scope="module")
def objects() -> dict[str, list[dict[str, Any]]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def test_every_object_validates_against_the_kubernetes_schemas(objects) -> None:
    version = kubernetes_validate.utils.latest_version()
    for rendered in objects.values():
        for obj in rendered:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_generation_job_is_indexed_with_a_retry_per_shard(objects) -> None:
    job = of_kind(objects["generation"], "Job")["safetypairs-generate"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["backoffLimitPerIndex"] >= 1
    assert pod(job)["restartPolicy"] == "Never"
    [container] = pod(job)["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["SAFETYPAIRS_SHARDS"]) == spec["completions"]  # the CLI's n of i/n
    rules = spec["podFailurePolicy"]["rules"]
    usage = [r for r in rules if r["action"] == "FailJob"]
    assert usage[0]["onExitCodes"] == {
        "containerName": container["name"],
        "operator": "In",
        "values": [2],  # the CLI's usage-error exit code (docs/pairs.md)
    }
    ignored = [r for r in rules if r["action"] == "Ignore"]
    assert ignored[0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    merge = of_kind(objects["generation-merge"], "Job")["safetypairs-merge"]
    [merger] = pod(merge)["containers"]
    merge_env = {e["name"]: e.get("value") for e in merger["env"]}
    assert merge_env["SAFETYPAIRS_SHARDS"] == env["SAFETYPAIRS_SHARDS"]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a container's command and arguments."""
    return re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", lambda m: env[m.group(1)], text)


def test_the_pods_arguments_parse_and_take_the_shard_from_the_index(objects, monkeypatch) -> None:
    job = of_kind(objects["generation"], "Job")["safetypairs-generate"]
    [container] = pod(job)["containers"]
    assert container["command"] == ["safetypairs"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env |= {"SAFETYPAIRS_OUT": "s3://bucket/run", "JOB_COMPLETION_INDEX": "5"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args([expand(a, env) for a in container["args"]])
    assert args.command == "generate"
    assert args.out == "s3://bucket/run/shard-5"
    assert args.shard == _default_shard() == f"5/{job['spec']['completions']}"
    # The services it calls: the headless gRPC Services of the base, on their ports.
    services = of_kind(render("cpu"), "Service")
    for target in (args.judge_target, args.edit_target):
        host, port = target.removeprefix("dns:///").split(":")
        assert services[host]["spec"]["clusterIP"] == "None"
        assert [p["port"] for p in services[host]["spec"]["ports"]] == [int(port)]
    # Credentials and the output URL come from the Secret; client files from a Secret mount.
    assert {"secretRef": {"name": "safetypairs-store"}} in container["envFrom"]
    secrets = {v["name"] for v in pod(job)["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in (env["SAFETYPAIRS_TOKEN_FILE"], env["SAFETYPAIRS_TLS_CA"]):
        folder = path.rsplit("/", 1)[0]
        assert mounts[folder] in secrets, path


def test_the_merge_script_names_real_commands(objects) -> None:
    job = of_kind(objects["generation-merge"], "Job")["safetypairs-merge"]
    [container] = pod(job)["containers"]
    script = container["args"][0]
    subprocess.run(["sh", "-n", "-c", script], check=True)  # it parses as a shell script
    commands = {"merge-datasets", "report", "export"}
    values = {"$SAFETYPAIRS_OUT": "s3://b/r", "$shards": "s3://b/r/shard-0"}
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words and words[0] == "safetypairs":
            commands.discard(words[1])
            for var, value in values.items():
                words = [w.replace(var, value) for w in words]
            build_parser().parse_args([re.sub(r"\$\(date[^)]*\)", "1", w) for w in words[1:]])
    assert not commands, f"the script does not run {commands}"


def test_pods_are_locked_down_like_the_services(objects) -> None:
    for rendered in objects.values():
        for name, job in of_kind(rendered, "Job").items():
            spec = pod(job)
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["automountServiceAccountToken"] is False
            for c in spec["containers"]:
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, name
                assert sc["allowPrivilegeEscalation"] is False, name
                assert sc["capabilities"]["drop"] == ["ALL"], name
                assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
                assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, name

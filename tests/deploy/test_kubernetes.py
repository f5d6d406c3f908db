"""deploy/kubernetes: the base and the production overlay render (with kustomize's rules, see
tests/deploy/kustomize.py) to objects valid against the Kubernetes schemas, and hold together:
selectors, ports, Secrets and ConfigMaps, the stop sequence, the locked-down pods."""

from __future__ import annotations

import re
import runpy
import shutil
from pathlib import Path

import kubernetes_validate
import pytest

from deployd.channels import parse_channel_text
from deployd.server.settings import ENVIRONMENT
from tests.deploy.kustomize import KustomizeError, Object, containers, render

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAY = Path("overlays") / "production"
# The oldest Kubernetes still commonly supported, and the newest schemas the validator knows.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
# gunicorn reads these (gunicorn.conf.py); DEPLOYD_DRAIN_SECONDS is the SIGTERM drain.
SERVER_VARIABLES = set(ENVIRONMENT) | {"PORT", "HOST", "WEB_CONCURRENCY", "DEPLOYD_DRAIN_SECONDS"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/kubernetes with the overlay's redis.env made from its example."""
    copy = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("redis.env"))
    shutil.copy(copy / OVERLAY / "redis.env.example", copy / OVERLAY / "redis.env")
    return copy


@pytest.fixture(scope="module")
def production(tree: Path) -> list[Object]:
    return render(tree / OVERLAY)


def one(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def pod_templates(objects: list[Object]) -> dict[str, Object]:
    """The pod template of every Deployment, Job and CronJob, by object name."""
    templates = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            templates[obj["metadata"]["name"]] = obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            templates[obj["metadata"]["name"]] = obj["spec"]["jobTemplate"]["spec"]["template"]
    return templates


def settings(objects: list[Object]) -> dict[str, str]:
    return one(objects, "ConfigMap", "deployd-settings")["data"]


def server_container(objects: list[Object]) -> Object:
    (container,) = one(objects, "Deployment", "deployd")["spec"]["template"]["spec"]["containers"]
    return container


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kustomization", ["base", str(OVERLAY)])
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(
    tree, kustomization, version
):
    objects = render(tree / kustomization)
    kinds = {o["kind"] for o in objects}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ConfigMap",
        "Job",
        "CronJob",
        "ServiceAccount",
    } <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_production_overlay_does_not_build_without_its_redis_url(tmp_path):
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("redis.env"))
    with pytest.raises(KustomizeError, match="redis.env does not exist"):
        render(copy / OVERLAY)


def test_the_overlay_sets_the_image_replicas_resources_and_autoscaler_bounds(production):
    assert {c["image"] for c in containers(production)} == {"registry.example.com/deployd:0.1.0"}
    assert all(o["metadata"]["namespace"] == "deployd" for o in production)
    deployment = one(production, "Deployment", "deployd")
    autoscaler = one(production, "HorizontalPodAutoscaler", "deployd")
    assert deployment["spec"]["replicas"] == autoscaler["spec"]["minReplicas"] == 3
    assert autoscaler["spec"]["maxReplicas"] == 12
    container = server_container(production)
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "512Mi"}
    # The patch changed the resources and kept the rest of the container.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert settings(production)["WEB_CONCURRENCY"] == "4"
    assert settings(production)["DEPLOYD_DRAIN_SECONDS"] == "5"
    redis = one(production, "Secret", "deployd-redis")
    assert set(redis["data"]) == {"REDIS_URL"}


def test_metrics_are_served_only_with_the_token_of_an_optional_secret(production):
    # Without the Secret a server on Redis serves no /metrics (deployd/metrics/access.py).
    env = {v["name"]: v for v in server_container(production)["env"]}
    ref = env["DEPLOYD_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "deployd-metrics", "key": "token", "optional": True}
    assert "DEPLOYD_METRICS" not in settings(production)  # never "open"


def test_the_service_budget_autoscaler_and_network_policy_select_the_server(production):
    deployment = one(production, "Deployment", "deployd")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert selects(one(production, "Service", "deployd")["spec"]["selector"], labels)
    budget = one(production, "PodDisruptionBudget", "deployd")
    assert selects(budget["spec"]["selector"]["matchLabels"], labels)
    target = one(production, "HorizontalPodAutoscaler", "deployd")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "deployd")
    policy = one(production, "NetworkPolicy", "deployd")["spec"]["podSelector"]["matchLabels"]
    for name, template in pod_templates(production).items():
        assert selects(policy, template["metadata"]["labels"]), name
    # Only the server's pods are behind the Service.
    service = one(production, "Service", "deployd")["spec"]["selector"]
    others = [
        n for n, t in pod_templates(production).items() if selects(service, t["metadata"]["labels"])
    ]
    assert others == ["deployd"]


def test_ports_named_by_probes_the_service_and_the_network_policy_exist(production):
    container = server_container(production)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports, probe
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = one(production, "Service", "deployd")
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    policy = one(production, "NetworkPolicy", "deployd")
    assert all(p["port"] in ports for rule in policy["spec"]["ingress"] for p in rule["ports"])
    # gunicorn binds $PORT: the port the pod declares.
    assert int(settings(production)["PORT"]) == ports["http"]


def test_every_secret_and_config_map_the_pods_use_exists_or_the_docs_create_it(production):
    rendered = {(o["kind"], o["metadata"]["name"]) for o in production}
    readme = (REPO / "docs" / "operating.md").read_text(encoding="utf-8")
    created_by_readme = set(re.findall(r"create secret generic ([a-z0-9-]+)", readme))
    wanted: set[tuple[str, str]] = set()
    for template in pod_templates(production).values():
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                wanted.add(("Secret", volume["secret"]["secretName"]))
            if "configMap" in volume:
                wanted.add(("ConfigMap", volume["configMap"]["name"]))
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                wanted.add(("ConfigMap", source["configMapRef"]["name"]))
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    wanted.add(("Secret", ref["name"]))
    missing = {w for w in wanted - rendered if not (w[0] == "Secret" and w[1] in created_by_readme)}
    assert not missing
    assert ("Secret", "deployd-redis") in rendered
    assert created_by_readme == {"deployd-signing-key", "deployd-license-keys", "deployd-metrics"}


def test_settings_name_only_variables_deployd_reads_and_paths_that_are_mounted(production):
    values = settings(production)
    assert set(values) <= SERVER_VARIABLES, set(values) - SERVER_VARIABLES
    mounts = {m["name"]: m["mountPath"] for m in server_container(production)["volumeMounts"]}
    assert values["DEPLOYD_KEYS_DIR"] == mounts["license-keys"]
    signing = Path(values["DEPLOYD_SIGNING_KEY"])
    assert str(signing.parent) == mounts["signing-key"] and signing.suffix == ".key"
    assert Path(values["DEPLOYD_STATE_DIR"]).is_relative_to(mounts["tmp"])


def test_pre_stop_drain_and_graceful_timeout_fit_in_the_grace_period(production):
    pod = one(production, "Deployment", "deployd")["spec"]["template"]["spec"]
    command = server_container(production)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    drain = int(settings(production)["DEPLOYD_DRAIN_SECONDS"])
    graceful_timeout = runpy.run_path(str(REPO / "gunicorn.conf.py"))["graceful_timeout"]
    assert pre_stop >= 1 and drain >= 1
    assert pre_stop + drain + graceful_timeout < pod["terminationGracePeriodSeconds"]


def test_every_container_runs_locked_down(production):
    dockerfile_user = re.search(r"^ARG DEPLOYD_UID=(\d+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert dockerfile_user
    for name, template in pod_templates(production).items():
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False, name
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, name
        assert pod_context["runAsUser"] == int(dockerfile_user.group(1)), name
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["runAsNonRoot"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert "memory" in container["resources"]["limits"], name
            for mount in container.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    assert mount.get("readOnly") is True, (name, mount)


def test_the_jobs_publish_the_mounted_channels_and_initialise_the_store(production):
    templates = pod_templates(production)
    (publish,) = templates["deployd-publish"]["spec"]["containers"]
    assert publish["command"][:2] == ["deployd", "publish"]
    mounts = {m["mountPath"]: m["name"] for m in publish["volumeMounts"]}
    assert mounts[publish["command"][2]] == "channels"
    (init,) = templates["deployd-store-init"]["spec"]["containers"]
    assert init["command"] == ["deployd", "store", "init"]
    cronjob = one(production, "CronJob", "deployd-store-init")
    assert cronjob["spec"]["suspend"] is True  # only ever run by hand: kubectl create job --from


def test_the_channels_config_map_holds_valid_channel_files(production):
    data = one(production, "ConfigMap", "deployd-channels")["data"]
    assert data
    for file_name, text in data.items():
        name = file_name.removesuffix(".yaml")
        channel = parse_channel_text(text.encode(), filename=file_name, expected_name=name)
        assert channel.name == name

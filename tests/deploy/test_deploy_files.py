"""The deployment files, checked statically (no Docker engine or cluster here).

Every file parses; the commands they run are real ``monitor`` subcommands; every MONITOR_*
variable they set is a setting the daemon knows; ports are the daemon's metrics port; the files
they copy or mount exist; probes and health checks use /healthz and /readyz; the image runs as
a non-root user. Where the real tool is installed (systemd-analyze), it verifies the units too.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from ruamel.yaml import YAML

from monitor.cli import cli
from monitor.config.settings import DeskSettings, HttpSettings, unknown_environment_settings
from monitor.desk.auth import is_loopback
from monitor.health import HealthServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
STAGES = ("poll", "match", "alert")
# Every process the deploy files run: the stages and the claim desk (`monitor desk`).
PROCESSES = (*STAGES, "desk")
METRICS_PORT = HttpSettings().port  # 9464
DESK_PORT = DeskSettings().port  # 9470, where the desk's pages listen
COMMANDS = set(cli.commands)


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def _yaml_all(path: Path) -> list[Any]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if doc]


def _assert_known_settings(environ: dict[str, str], where: str) -> None:
    problems = unknown_environment_settings(environ)
    assert not problems, f"{where}: " + "; ".join(problems)


def _assert_stage_command(argv: list[str], where: str) -> None:
    assert argv and argv[0] in COMMANDS, f"{where}: {argv} is not a monitor subcommand"
    command = cli.commands[argv[0]]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in argv[1:]:
        if word.startswith("--"):
            assert word in options, f"{where}: monitor {argv[0]} has no option {word}"


# --------------------------------------------------------------------------- Dockerfile
def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if raw.strip().startswith("#"):
            continue
        current += raw.rstrip("\\").rstrip() + " " if raw.endswith("\\") else raw
        if not raw.endswith("\\"):
            if current.strip():
                word, _, rest = current.strip().partition(" ")
                lines.append((word.upper(), rest.strip()))
            current = ""
    return lines


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for word, rest in _final_stage():
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def _json_or_shell(rest: str) -> list[str]:
    import json

    return json.loads(rest) if rest.startswith("[") else shlex.split(rest)


def test_the_image_is_slim_python_311_and_runs_as_a_non_root_user() -> None:
    froms = [rest.split() for word, rest in _dockerfile() if word == "FROM"]
    # One stage only lends the build stage its Rust toolchain (native/); every other is slim
    # Python 3.11, and the runtime takes nothing from the Rust stage.
    toolchains = [f for f in froms if f[0] != "python:3.11-slim"]
    assert [f[0].split(":")[0] for f in toolchains] == ["rust"], froms
    assert not any(word == "COPY" and f"--from={toolchains[0][-1]}" in rest
                   for word, rest in _final_stage())
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user


def test_the_image_builds_the_compiled_reading_and_fails_without_it() -> None:
    runs = " ".join(rest for word, rest in _dockerfile() if word == "RUN")
    assert "pip install . ./native" in runs
    assert 'python -c "import monitor_native"' in runs


def test_the_image_runs_monitor_with_a_real_default_command() -> None:
    stage = dict(_final_stage())
    assert _json_or_shell(stage["ENTRYPOINT"]) == ["monitor"]
    _assert_stage_command(_json_or_shell(stage["CMD"]), "Dockerfile CMD")
    checks = [_json_or_shell(rest) for word, rest in _final_stage() if word == "RUN"
              and rest.startswith("[")]
    for argv in checks:
        if argv[0] == "monitor":
            _assert_stage_command(argv[1:], "Dockerfile RUN")


def test_the_image_settings_are_real_and_live_on_the_volume() -> None:
    env = _dockerfile_env()
    _assert_known_settings(env, "Dockerfile ENV")
    assert HttpSettings(address=env["MONITOR_HTTP__ADDRESS"]).port == METRICS_PORT
    assert env["MONITOR_HTTP__ADDRESS"].startswith("0.0.0.0:")
    exposed = {rest.split("/")[0] for word, rest in _final_stage() if word == "EXPOSE"}
    assert exposed == {str(METRICS_PORT)}
    volumes = [v for word, rest in _final_stage() if word == "VOLUME"
               for v in _json_or_shell(rest)]
    for name in ("MONITOR_STATE_PATH", "MONITOR_MATCH__EMBEDDING_CACHE"):
        assert any(env[name].startswith(volume.rstrip("/") + "/") for volume in volumes), name


def test_the_image_copies_files_that_exist_and_the_build_context_keeps() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore should allow-list what the image needs"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for word, rest in _dockerfile():
        if word == "COPY" and "--from=" not in rest:
            sources += _json_or_shell(rest)[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
    assert {"pyproject.toml", "monitor", "feeds.yaml", "claims.yaml", "alerts"} <= allowed


def test_the_health_check_command_really_probes_healthz() -> None:
    (rest,) = [rest for word, rest in _final_stage() if word == "HEALTHCHECK"]
    argv = _json_or_shell(rest[rest.index("CMD") + 3:].strip())
    assert argv[:2] == ["python", "-c"] and "/healthz" in argv[2]
    server = HealthServer("127.0.0.1", 0, CollectorRegistry())
    server.start()
    address = f"127.0.0.1:{server.port}"
    run = [sys.executable, "-c", argv[2]]
    env = {"MONITOR_HTTP__ADDRESS": address, "PATH": "/usr/bin:/bin"}
    try:
        assert subprocess.run(run, env=env, timeout=30, check=False).returncode == 0
    finally:
        server.stop()
    failed = subprocess.run(run, env=env, timeout=30, check=False, capture_output=True)
    assert failed.returncode != 0, "the health check passed with nothing listening"


def test_every_data_file_of_the_package_is_declared_as_package_data() -> None:
    import fnmatch
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config.get("tool", {}).get("setuptools", {}).get("package-data", {})
    globs = patterns.get("monitor", []) + patterns.get("*", [])
    data = [p.relative_to(ROOT / "monitor").as_posix()
            for p in (ROOT / "monitor").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    missing = [f for f in data if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not missing, missing


# --------------------------------------------------------------------------- docker compose
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_compose_runs_the_three_stages_and_the_desk_from_the_dockerfile(compose) -> None:
    services = compose["services"]
    kafka_env = _service_env(services["kafka"])
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    bootstrap = re.search(r"PLAINTEXT://([^,]+)", advertised)[1]
    for stage in PROCESSES:
        service = services[stage]
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == \
            ROOT / "Dockerfile"
        _assert_stage_command(service["command"], f"compose {stage}")
        assert service["command"][0] == stage
        env = _service_env(service)
        _assert_known_settings(env, f"compose {stage}")
        assert env["MONITOR_KAFKA__BOOTSTRAP_SERVERS"] == bootstrap
        assert service["stop_signal"] == "SIGTERM"
        assert any(v.endswith(":/var/lib/monitor") for v in service["volumes"])
    assert _service_env(services["match"])["MONITOR_KAFKA__TRANSACTIONAL_ID"]


def test_compose_publishes_the_desk_pages_on_loopback_only(compose) -> None:
    desk = compose["services"]["desk"]
    address = DeskSettings(address=_service_env(desk)["MONITOR_DESK__ADDRESS"])
    assert address.port == DESK_PORT
    assert desk["ports"] == [f"127.0.0.1:{DESK_PORT}:{address.port}"]
    # Beyond the container's loopback the desk needs credentials: from monitor.env, the
    # env_file (its example lists them; the test below checks that it does).
    assert not is_loopback(address.host)
    assert (COMPOSE.parent / desk["env_file"]).name == "monitor.env"
    assert "MONITOR_DESK__TOKEN" not in _service_env(desk), "the token is a secret"


def test_compose_kafka_is_the_official_image_in_kraft_mode(compose) -> None:
    kafka = compose["services"]["kafka"]
    image, tag = kafka["image"].split(":")
    assert image == "apache/kafka"
    local = (DEPLOY / "kafka" / "local-kafka").read_text()
    assert f"KAFKA_VERSION={tag}\n" in local, "compose and local-kafka should run one version"
    env = _service_env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voter_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    assert f"CONTROLLER://:{voter.split(':')[1]}" in env["KAFKA_LISTENERS"]
    assert voter.split(":")[0] == "kafka"
    for name in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                 "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                 "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[name] == "1", name
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])


def _bind_mounts(compose: dict[str, Any]) -> list[tuple[str, Path]]:
    mounts = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                mounts.append((name, (COMPOSE.parent / source).resolve()))
    return mounts


def test_compose_mounts_files_that_exist(compose) -> None:
    mounts = list(_bind_mounts(compose))
    assert mounts
    for name, path in mounts:
        assert path.exists(), f"compose {name}: {path} does not exist"


def test_compose_prometheus_mounts_the_scrape_config_and_rules(compose) -> None:
    mounts = dict((str(p.relative_to(ROOT)), n) for n, p in _bind_mounts(compose))
    for path in ("deploy/prometheus/prometheus-compose.yml", "deploy/prometheus/rules.yml"):
        assert mounts.get(path) == "prometheus", path


def test_compose_prometheus_scrapes_every_stage(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    [config] = [m.split(":")[0] for m in mounts if m.split(":")[1] ==
                "/etc/prometheus/prometheus.yml"]
    path = (COMPOSE.parent / config).resolve()
    targets = {target for job in _yaml(path)["scrape_configs"]
               for static in job.get("static_configs", []) for target in static["targets"]}
    assert {f"{stage}:{METRICS_PORT}" for stage in PROCESSES} <= targets


def test_compose_commits_no_secret_and_the_example_env_is_complete(compose) -> None:
    example = DEPLOY / "monitor.env.example"
    for stage in PROCESSES:
        env_file = compose["services"][stage]["env_file"]
        assert (COMPOSE.parent / env_file).name == "monitor.env"
    names = dict(line.lstrip("# ").split("=", 1) for line in example.read_text().splitlines()
                 if re.match(r"#? ?[A-Z][A-Z0-9_]*=", line))
    assert all(value == "" for value in names.values()), "the example carries no values"
    routes = [line for line in (ROOT / "alerts/routes.yaml").read_text().splitlines()
              if not line.lstrip().startswith("#")]
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)\}", "\n".join(routes)))
    assert referenced and referenced <= names.keys(), referenced - names.keys()
    desk_secrets = {"MONITOR_DESK__TOKEN", "MONITOR_DESK__USERNAME", "MONITOR_DESK__PASSWORD"}
    assert desk_secrets <= names.keys(), desk_secrets - names.keys()
    _assert_known_settings({n: "" for n in names if n.startswith("MONITOR_")}, str(example))
    grafana = compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert grafana.startswith("${"), "the Grafana password comes from the environment"


# --------------------------------------------------------------------------- systemd
def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (keys may repeat, as systemd allows)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


SANDBOX = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
           "PrivateTmp": "yes", "PrivateDevices": "yes", "DynamicUser": "yes",
           "RestrictNamespaces": "yes", "LockPersonality": "yes"}


@pytest.mark.parametrize("stage", PROCESSES)
def test_systemd_unit_runs_its_stage_sandboxed(stage: str) -> None:
    unit = _unit(SYSTEMD / f"monitor-{stage}.service")
    service = unit["Service"]
    for key in ("ExecStart", "ExecStartPre"):
        for line in service.get(key, []):
            argv = shlex.split(line)
            assert argv[0] == "/opt/monitor/bin/monitor", line
            _assert_stage_command(argv[1:], f"monitor-{stage}.service {key}")
    assert shlex.split(service["ExecStart"][0])[1] == stage
    for key, value in SANDBOX.items():
        assert service.get(key) == [value], f"monitor-{stage}.service: {key}"
    assert "@system-service" in service["SystemCallFilter"]
    families = service["RestrictAddressFamilies"][0].split()
    assert set(families) <= {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert service["KillSignal"] == ["SIGTERM"] and service["Restart"] == ["on-failure"]
    assert int(service["TimeoutStopSec"][0]) > 0
    assert service["EnvironmentFile"] == ["/etc/monitor/monitor.env"]
    assert service["StateDirectory"] == [f"monitor-{stage}"]
    env = dict(value.split("=", 1) for value in service["Environment"])
    _assert_known_settings(env, f"monitor-{stage}.service")
    assert env["MONITOR_STATE_PATH"].startswith(f"%S/monitor-{stage}/")
    if "MONITOR_MATCH__EMBEDDING_CACHE" in env:
        cache = service["CacheDirectory"][0]
        assert env["MONITOR_MATCH__EMBEDDING_CACHE"].startswith(f"%C/{cache}/")
    if stage == "desk":
        assert env["MONITOR_DESK__VIEW_PATH"].startswith("%S/monitor-desk/")
        desk = DeskSettings(address=env["MONITOR_DESK__ADDRESS"])
        assert desk.port == DESK_PORT and is_loopback(desk.host)
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_stages_on_one_host_use_distinct_ports_from_the_default() -> None:
    ports = []
    for stage in PROCESSES:
        service = _unit(SYSTEMD / f"monitor-{stage}.service")["Service"]
        env = dict(value.split("=", 1) for value in service["Environment"])
        ports.append(HttpSettings(address=env["MONITOR_HTTP__ADDRESS"]).port)
    assert ports == [METRICS_PORT, METRICS_PORT + 1, METRICS_PORT + 2, METRICS_PORT + 3]
    assert DESK_PORT not in ports, "the desk's pages and a metrics port on one address"
    scrape = DEPLOY / "prometheus" / "prometheus.yml"
    if scrape.exists():
        targets = {t for job in _yaml(scrape)["scrape_configs"]
                   for static in job.get("static_configs", []) for t in static["targets"]}
        assert {f"127.0.0.1:{port}" for port in ports} <= targets


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_units(tmp_path) -> None:
    """systemd's own parser; the executable is swapped for one that exists here."""
    for stage in PROCESSES:
        text = (SYSTEMD / f"monitor-{stage}.service").read_text()
        path = tmp_path / f"monitor-{stage}.service"
        path.write_text(text.replace("/opt/monitor/bin/monitor", shutil.which("true")))
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                                capture_output=True, text=True, timeout=60, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and path.name not in output, output


# --------------------------------------------------------------------------- Kubernetes
@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = _yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "kustomization.yaml should list every manifest"
    found = {}
    for name in kustomization["resources"]:
        for doc in _yaml_all(K8S / name):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def _pod(manifests, stage: str) -> dict[str, Any]:
    return manifests[("Deployment", f"monitor-{stage}")]["spec"]["template"]["spec"]


def test_k8s_settings_are_real_settings(manifests) -> None:
    settings = manifests[("ConfigMap", "monitor-settings")]["data"]
    _assert_known_settings(settings, "k8s monitor-settings")
    assert HttpSettings(address=settings["MONITOR_HTTP__ADDRESS"]).port == METRICS_PORT
    for stage in PROCESSES:
        (container,) = _pod(manifests, stage)["containers"]
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        _assert_known_settings(env, f"k8s monitor-{stage}")
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"monitor-settings", "monitor-secrets"}


@pytest.mark.parametrize("stage", PROCESSES)
def test_k8s_deployment_runs_its_stage_with_probes_and_limits(manifests, stage) -> None:
    deployment = manifests[("Deployment", f"monitor-{stage}")]
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = pod["containers"]
    _assert_stage_command(container["args"], f"k8s monitor-{stage}")
    assert container["args"][0] == stage
    ports = {p["name"]: p for p in container["ports"]}
    # The desk's pages have a port of their own (test_k8s_desk_pages_...).
    assert ports.keys() == ({"metrics", "desk"} if stage == "desk" else {"metrics"})
    port = ports["metrics"]
    assert port["containerPort"] == METRICS_PORT
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["port"] in (port["name"], METRICS_PORT), probe
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    settings = manifests[("ConfigMap", "monitor-settings")]["data"]
    for name in ("MONITOR_STATE_PATH", "MONITOR_MATCH__EMBEDDING_CACHE",
                 "MONITOR_DESK__VIEW_PATH"):
        mount = next(m for m in mounts if settings[name].startswith(m + "/"))
        assert "emptyDir" in volumes[mounts[mount]], f"{name} is not on a writable volume"
    pdb = manifests[("PodDisruptionBudget", f"monitor-{stage}")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", quantity).groups()
    return float(number) * units[unit]


def test_k8s_matcher_is_sized_for_the_model_and_has_a_unique_transactional_id(
        manifests) -> None:
    (container,) = _pod(manifests, "match")["containers"]
    assert 400 <= _mebibytes(container["resources"]["requests"]["memory"]) <= 600
    assert _mebibytes(container["resources"]["limits"]["memory"]) >= 512
    env = {e["name"]: e for e in container["env"]}
    ref = env["MONITOR_KAFKA__TRANSACTIONAL_ID"]["valueFrom"]["fieldRef"]
    assert ref["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("stage", PROCESSES)
def test_k8s_config_volume_maps_repository_files(manifests, stage) -> None:
    """The ConfigMap is made with `kubectl create configmap --from-file` (keys = file names);
    each item must name a repository file and land where the stage's command reads it."""
    pod = _pod(manifests, stage)
    (container,) = pod["containers"]
    config = next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]
    assert config["name"] == "monitor-config"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    paths = {item["path"]: item["key"] for item in config["items"]}
    for path, key in paths.items():
        assert (ROOT / path).is_file() and Path(path).name == key, path
    command = cli.commands[stage]
    defaults = {p.name: str(p.default) for p in command.params if p.name.endswith("_path")}
    for default in defaults.values():
        assert default in paths, f"monitor {stage} reads {mount['mountPath']}/{default}"
    if stage == "alert":
        templates = {p.relative_to(ROOT).as_posix()
                     for p in (ROOT / "alerts" / "templates").glob("*.j2")}
        assert templates <= paths.keys(), sorted(templates - paths.keys())


def test_k8s_metrics_service_selects_every_stage(manifests) -> None:
    service = manifests[("Service", "monitor-metrics")]
    (port,) = service["spec"]["ports"]
    assert port["port"] == METRICS_PORT and port["targetPort"] == "metrics"
    for stage in PROCESSES:
        labels = manifests[("Deployment", f"monitor-{stage}")]["spec"]["template"]["metadata"][
            "labels"]
        assert service["spec"]["selector"].items() <= labels.items()


def test_k8s_desk_pages_are_served_with_a_token_from_the_secret(manifests) -> None:
    deployment = manifests[("Deployment", "monitor-desk")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    pages = next(p for p in container["ports"] if p["name"] == "desk")
    env = {e["name"]: e for e in container["env"]}
    address = DeskSettings(address=env["MONITOR_DESK__ADDRESS"]["value"])
    assert address.port == pages["containerPort"] == DESK_PORT
    # Reachable through the Service, so the desk must have credentials: the token, required.
    assert not is_loopback(address.host)
    ref = env["MONITOR_DESK__TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "monitor-secrets", "key": "MONITOR_DESK__TOKEN"}
    settings = manifests[("ConfigMap", "monitor-settings")]["data"]
    assert not {"MONITOR_DESK__TOKEN", "MONITOR_DESK__PASSWORD"} & settings.keys()
    service = manifests[("Service", "monitor-desk")]
    (port,) = service["spec"]["ports"]
    assert port["port"] == DESK_PORT and port["targetPort"] == "desk"
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["selector"].get("app.kubernetes.io/component") == "desk"


# --------------------------------------------------------------------------- the whole set
def test_every_deploy_file_parses() -> None:
    import json

    for path in list(DEPLOY.rglob("*.yml")) + list(DEPLOY.rglob("*.yaml")):
        if path.parts[-3:-1] == ("deploy", "prometheus"):
            continue  # another owner; promtool checks those
        assert _yaml_all(path), path
    for path in DEPLOY.rglob("*.json"):
        json.loads(path.read_text())


def test_the_real_metrics_endpoint_serves_on_the_default_port_paths() -> None:
    """The paths every probe above uses are the ones HealthServer answers."""
    server = HealthServer("127.0.0.1", 0, CollectorRegistry())
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 200
    finally:
        server.stop()

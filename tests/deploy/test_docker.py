"""deploy/docker: the Dockerfile and compose file, checked statically (no engine here: no
`docker build`). Compose mounts our Prometheus and Grafana files, secrets come from .env."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.tools import DEPLOY, ROOT, load_yaml

DOCKER = DEPLOY / "docker"
SECRET_NAMES = re.compile(r"PASSWORD|TOKEN|SECRET|SMTP_URL|_SID", re.IGNORECASE)
SUBSTITUTION = re.compile(r"\$\{[A-Z_]+(:\?[^}]*|:-[^}]*)?\}")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def compose() -> dict[str, Any]:
    doc = load_yaml(DOCKER / "compose.yml")
    assert isinstance(doc, dict)
    return doc


def test_dockerfile() -> None:
    steps = instructions()
    keywords = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [args for k, args in steps if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # Runs as that user from USER on: CMD and HEALTHCHECK come after it.
    assert keywords.index("USER") < keywords.index("CMD")
    assert keywords.index("USER") < keywords.index("HEALTHCHECK")
    assert ("EXPOSE", "8080") in steps
    assert steps[-1] == ("CMD", '["dialer", "serve"]')
    (health,) = [args for k, args in steps if k == "HEALTHCHECK"]
    assert "/healthz" in health and "CMD" in health
    installs = [args for k, args in steps if k == "RUN" and "pip install" in args]
    assert installs, "the project is not pip-installed"
    # Everything COPY'd exists in the repository (the build context is its root).
    for keyword, args in steps:
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
    assert not any(SECRET_NAMES.search(args) for k, args in steps if k in {"ENV", "ARG"})


SCALE_OUT = {"dialer", "worker-1", "worker-2", "redis", "postgres"}
WORKERS = ("worker-1", "worker-2")


def active(profiles: set[str]) -> set[str]:
    """The services `docker compose --profile …` starts: those without profiles, and those
    in one of `profiles`."""
    services = compose()["services"]
    return {
        n for n, s in services.items() if not s.get("profiles") or set(s["profiles"]) & profiles
    }


def test_compose_services_and_images() -> None:
    services = compose()["services"]
    assert {"dialer", "migrate", "postgres", "redis", "prometheus", "grafana", *WORKERS} <= set(
        services
    )
    for name, service in services.items():
        assert "image" in service, f"{name} has no image"
        image = service["image"]
        if "build" not in service:
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    dialer = services["dialer"]
    assert dialer["command"] == ["dialer", "serve"]
    assert dialer["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (DOCKER / dialer["build"]["context"] / dialer["build"]["dockerfile"]).exists()
    assert "127.0.0.1:8080:8080" in dialer["ports"]
    env = dialer["environment"]
    assert env["DIALER_DATABASE_URL"].startswith("postgresql+asyncpg://")
    # One bus for serve and the workers: serve's pauses must reach the workers' engines.
    assert env["DIALER_BUS_URL"] == "redis://redis:6379/0"
    assert services["migrate"]["command"] == ["dialer", "migrate"]


def test_compose_scale_out_profile_runs_serve_two_workers_redis_postgres() -> None:
    services = compose()["services"]
    assert SCALE_OUT <= active({"scale-out"})
    assert not set(WORKERS) & active(set())  # the workers are the profile's
    serve_env = services["dialer"]["environment"]
    for name in WORKERS:
        worker = services[name]
        assert worker["command"] == ["dialer", "worker"], name
        assert worker["profiles"] == ["scale-out"], name
        assert "ports" not in worker, name  # no API; metrics inside the compose network
        env = worker["environment"]
        for key in ("DIALER_DATABASE_URL", "DIALER_BUS_URL"):
            assert env[key] == serve_env[key], (name, key)
        port = env["DIALER_METRICS_PORT"]
        assert port == "9101" and env["DIALER_HOST"] == "0.0.0.0", name
        # The image's HEALTHCHECK probes the API port; a worker's is its metrics port.
        probe = " ".join(worker["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in probe, probe
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["dialer"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # Prometheus scrapes exactly the profile's workers, on their metrics port.
    targets = load_yaml(DOCKER / "prometheus-targets" / "dialer-worker.yml")
    listed = [t for group in targets for t in group["targets"]]
    assert listed == [f"{n}:{services[n]['environment']['DIALER_METRICS_PORT']}" for n in WORKERS]
    assert all(group["labels"] == {"role": "worker"} for group in targets)


def test_compose_dependencies_exist_in_every_profile() -> None:
    """What `docker compose config` would refuse: a dependency on an unknown service, or on
    one that the same set of profiles does not start."""
    services = compose()["services"]
    for profiles in (set(), {"scale-out"}):
        running = active(profiles)
        for name in running:
            needed = set(services[name].get("depends_on", {}))  # a list or a mapping
            assert needed <= running, (profiles, name, needed - running)


def test_compose_mounts_our_files() -> None:
    services = compose()["services"]
    wanted = {
        "prometheus": {
            "/etc/prometheus/prometheus.yml": DEPLOY / "prometheus" / "prometheus.yml",
            "/etc/prometheus/alerts.yml": DEPLOY / "prometheus" / "alerts.yml",
            "/etc/prometheus/targets": DOCKER / "prometheus-targets",
        },
        "grafana": {
            "/etc/grafana/provisioning": DEPLOY / "grafana" / "provisioning",
            "/var/lib/grafana/dashboards/dialer": DEPLOY / "grafana" / "dashboards",
        },
    }
    for name, mounts in wanted.items():
        binds = {}
        for volume in services[name]["volumes"]:
            source, target, *_ = volume.split(":")
            if source.startswith("."):
                path = (DOCKER / source).resolve()
                assert path.exists(), f"{name} mounts {source}, which does not exist"
                binds[target] = path
        assert binds == {t: p.resolve() for t, p in mounts.items()}, name
    # The provider reads where compose mounts the dashboards; Prometheus finds its targets.
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dialer.yml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/dialer"
    targets = load_yaml(DOCKER / "prometheus-targets" / "dialer-serve.yml")
    assert targets[0]["targets"] == ["dialer:8080"]


def walk(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(dotted path, value) of every scalar in the document."""
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in walk(v, f"{path}[{i}]")]
    return [(path, str(value))]


def test_compose_has_no_inline_secrets() -> None:
    for path, value in walk(compose()):
        leaf = path.rsplit(".", 1)[-1]
        if SECRET_NAMES.search(leaf):
            # A secret's value is only ever a substitution from .env.
            assert SUBSTITUTION.fullmatch(value), f"{path} is inline: {value!r}"
        if "://" in value and "@" in value:  # credentials in a URL come from .env too
            credentials = value.split("://", 1)[1].split("@", 1)[0]
            assert SUBSTITUTION.search(credentials), f"{path} has inline credentials"
    for service in compose()["services"].values():
        env_file = service.get("env_file")
        if env_file is not None:
            assert env_file == ".env"


def test_env_example_lists_the_secrets_and_env_is_ignored() -> None:
    example = (DOCKER / ".env.example").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", (DOCKER / "compose.yml").read_text()))
    for name in used:
        assert re.search(rf"^{name}=", example, re.MULTILINE), f"{name} missing in .env.example"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()

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


def test_compose_services_and_images() -> None:
    services = compose()["services"]
    assert {"dialer", "worker", "migrate", "postgres", "redis", "prometheus", "grafana"} <= set(
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
    # The Redis bus is not implemented yet: one serve process on the in-process bus.
    assert env["DIALER_BUS_URL"] == "memory://"
    assert services["worker"]["command"] == ["dialer", "worker"]
    assert services["worker"]["profiles"] == ["scale-out"]
    assert services["migrate"]["command"] == ["dialer", "migrate"]


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

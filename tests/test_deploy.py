"""deploy/: the compose file and Dockerfiles name files that exist, Prometheus config and alert rules
pass promtool, and every PromQL expression of the dashboard and the rules parses and returns data in a
real Prometheus that scraped a real pipeline run."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client import REGISTRY

import maskwatch.ingest.metrics  # noqa: F401 - registers the stage's metrics
import maskwatch.publisher.metrics  # noqa: F401
import maskwatch.runtime.metrics_server  # noqa: F401
import maskwatch.worker.metrics  # noqa: F401
from maskwatch.cli.run_all import run_all
from maskwatch.config.settings import load_settings
from maskwatch.runtime.metrics_server import serve_metrics
from maskwatch.runtime.private_redis import free_port
from tests.support.pipeline import make_settings, wait_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = [DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.gpu.yml"]
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "maskwatch.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_VARIABLES = {"$camera": ".*", "$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def compose(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def with_variables(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


# --- compose, Dockerfiles, config ---


def test_compose_names_existing_dockerfiles_configs_and_volumes() -> None:
    base = compose(COMPOSE_FILES[0])
    named_volumes = set(base.get("volumes") or {})
    for path in COMPOSE_FILES:
        for name, service in compose(path)["services"].items():
            build = service.get("build")
            if build:
                context = (path.parent / build["context"]).resolve()
                assert context.is_dir(), f"{path.name}: {name}: build context {context} missing"
                assert (context / build.get("dockerfile", "Dockerfile")).is_file(), (
                    f"{name}: Dockerfile missing"
                )
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith((".", "/")):
                    assert (path.parent / source).exists(), (
                        f"{path.name}: {name}: volume source {source} missing"
                    )
                else:
                    assert source in named_volumes, f"{path.name}: {name}: volume {source} is not declared"
            command = service.get("command") or []
            if "--config" in command:
                target = command[command.index("--config") + 1]
                mounts = {v.split(":")[1] for v in service.get("volumes", [])} | {
                    v.split(":")[1] for v in base["x-maskwatch"]["volumes"]
                }
                assert target in mounts, f"{name}: --config {target} is not mounted"


def test_one_ingest_service_per_configured_camera_and_scrape_targets_match() -> None:
    services = compose(COMPOSE_FILES[0])["services"]
    settings = load_settings(DEPLOY / "maskwatch.yml")
    ingest_cameras = {
        s["command"][s["command"].index("--camera") + 1]
        for n, s in services.items()
        if n.startswith("ingest-")
    }
    assert ingest_cameras == {c.id for c in settings.cameras}
    assert all(f"ingest-{c}" in services for c in ingest_cameras)
    prometheus = yaml.safe_load(PROMETHEUS_YML.read_text())
    ports = {
        "maskwatch-ingest": settings.ingest.metrics_port,
        "maskwatch-worker": settings.worker.metrics_port,
        "maskwatch-publisher": settings.publisher.metrics_port,
    }
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"] if job["job_name"] in ports}
    assert set(jobs) == set(ports), "a maskwatch stage is not scraped"
    for name, job in jobs.items():
        for target in [t for sc in job.get("static_configs", []) for t in sc["targets"]]:
            host, port = target.split(":")
            assert host in services, f"scrape target {target} is not a compose service"
            assert int(port) == ports[name]
        for sd in job.get("dns_sd_configs", []):  # one target per A record: every scaled replica
            assert sd.get("type", "SRV") == "A" and sd["port"] == ports[name], sd
            assert all(n.removeprefix("tasks.") in services for n in sd["names"]), sd
    # Scaled worker replicas are all scraped: the worker job resolves the compose service by DNS.
    assert jobs["maskwatch-worker"].get("dns_sd_configs"), "worker replicas need DNS service discovery"
    assert str(settings.clips.dir) in [v.split(":")[1] for v in services["publisher"]["volumes"]]


def test_the_api_shares_the_publishers_clips_and_the_mqtt_bridge_reaches_its_broker(monkeypatch) -> None:
    services = compose(COMPOSE_FILES[0])["services"]
    settings = load_settings(DEPLOY / "maskwatch.yml")
    clips = str(settings.clips.dir)
    publisher_volume = next(v.split(":")[0] for v in services["publisher"]["volumes"] if f":{clips}" in v)
    api = services["api"]
    assert f"{publisher_volume}:{clips}:ro" in api["volumes"], "the API serves the clips the publisher writes"
    assert api["command"][0] == "api" and any(p.endswith(f":{settings.api.port}") for p in api["ports"])
    for service in (api, services["mqtt"]):  # their environment is valid configuration
        for key, value in service["environment"].items():
            monkeypatch.setenv(key, str(value))
    loaded = load_settings(DEPLOY / "maskwatch.yml")
    assert loaded.api.host == "0.0.0.0"
    broker = urllib.parse.urlsplit(loaded.mqtt.url.get_secret_value())
    assert broker.hostname in services and services[broker.hostname]["profiles"] == ["mqtt"]
    assert services["mqtt"]["profiles"] == ["mqtt"] and services["webhooks"]["profiles"] == ["webhooks"]
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert f"listener {broker.port}" in conf


def test_dockerfiles_copy_paths_that_exist() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for dockerfile in sorted(DEPLOY.glob("Dockerfile*")):
        copies = [
            shlex.split(line)[1:-1]
            for line in dockerfile.read_text().splitlines()
            if line.startswith("COPY ")
        ]
        assert copies, f"{dockerfile.name} copies nothing"
        for sources in copies:
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
                assert source not in ignored, f"{dockerfile.name}: COPY {source} is excluded by .dockerignore"


def test_docker_compose_config_when_the_cli_has_compose() -> None:
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True) if docker else None
    if probe is None or probe.returncode != 0:
        pytest.skip("docker compose CLI plugin not available (the files are checked by the other tests)")
    for extra in ([], ["-f", str(COMPOSE_FILES[1])]):
        run = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE_FILES[0]), *extra, "config", "--quiet"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][
        0
    ]
    dash = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dash["panels"]} | {
        t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]
    }
    assert uids == {datasource["uid"]}
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for topic in (
        "compliance rate",
        "violations per minute",
        "people seen",
        "frames per second",
        "latency",
        "stream lag",
        "dropped frames",
        "camera up",
    ):
        assert topic in titles, f"dashboard lacks a panel on {topic}"
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


# --- promtool ---


def _promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return path


def test_promtool_checks_config_and_rules() -> None:
    promtool = _promtool()
    for args in (["check", "config", str(PROMETHEUS_YML)], ["check", "rules", str(ALERTS)]):
        run = subprocess.run([promtool, *args], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_alert_rules_fire_as_intended_on_synthetic_series() -> None:
    run = subprocess.run(
        [_promtool(), "test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "prometheus" / "alerts_test.yml").read_text()))
    assert tested == {r["alert"] for r in alert_rules()}, "every alert has a unit test"


STAGE_JOBS = {"ingest": "maskwatch-ingest", "worker": "maskwatch-worker", "publisher": "maskwatch-publisher"}


def test_every_alert_has_severity_summary_and_description() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule["alert"]


def test_every_stage_has_a_down_alert_on_up_absence_and_heartbeat() -> None:
    """A stage that is down, never scraped, hung or heartbeat-less must alert (the promtool tests show it)."""
    exprs = [" ".join(r["expr"].split()) for r in alert_rules()]
    for stage, job in STAGE_JOBS.items():
        assert any(
            f'up{{job="{job}"}} == 0' in e
            and f'absent(up{{job="{job}"}})' in e
            and re.search(rf'maskwatch_heartbeat_timestamp_seconds{{[^}}]*stage="{stage}"', e)
            and "time() -" in e
            for e in exprs
        ), f"no alert covers {stage} down, absent and a stale heartbeat"
    for topic in ("maskwatch_deadletter_total", "maskwatch_ingest_frames_dropped_total",
                  "maskwatch_worker_frames_skipped_total", "maskwatch_end_to_end_latency_seconds_bucket",
                  "redis_memory_used_bytes", "redis_memory_max_bytes"):  # fmt: skip
        assert any(topic in e for e in exprs), f"no alert on {topic}"


def test_alert_rules_name_only_scraped_jobs() -> None:
    jobs = {job["job_name"] for job in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]}
    used = {j for r in alert_rules() for j in re.findall(r'\bjob="([^"]+)"', r["expr"])}
    assert used and used <= jobs, f"rules name jobs prometheus.yml does not scrape: {sorted(used - jobs)}"


# --- only metrics the code exports ---

_METRIC_DEFINITION = re.compile(r'\b(Counter|Gauge|Histogram|Summary)\(\s*"(maskwatch_[a-z0-9_]+)"')
_SERIES_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
}


def defined_series_names() -> set[str]:
    """Series names the metric definitions in the source can produce (found by reading the code, not
    importing it, so a metric defined in a module the tests do not import counts too)."""
    names: set[str] = set()
    for folder in ("ingest", "worker", "publisher", "maskwatch"):
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in _METRIC_DEFINITION.findall(path.read_text(encoding="utf-8")):
                base = name.removesuffix("_total") if kind == "Counter" else name
                names |= {base + suffix for suffix in _SERIES_SUFFIXES[kind]}
    return names


def test_alert_rules_query_only_metrics_defined_in_the_code() -> None:
    defined = defined_series_names()
    assert (
        "maskwatch_deadletter_total" in defined and "maskwatch_end_to_end_latency_seconds_bucket" in defined
    )
    for rule in alert_rules():
        used = set(re.findall(r"\bmaskwatch_[a-z0-9_]+", rule["expr"]))
        assert used <= defined, f"{rule['alert']}: not defined by the code: {sorted(used - defined)}"


def exported_series_names() -> set[str]:
    """Every series name the registered metrics can produce (``_total``, ``_bucket``, ... included)."""
    return set(REGISTRY._names_to_collectors)


def test_dashboard_and_alerts_query_only_exported_metrics() -> None:
    exported = exported_series_names()
    texts = [e for _, e in dashboard_exprs()] + [r["expr"] for r in alert_rules()]
    used = {m for text in texts for m in re.findall(r"\bmaskwatch_[a-z0-9_]+", text)}
    assert used, "no maskwatch metric found in the dashboard and rules"
    assert used <= exported, f"not exported by the code: {sorted(used - exported)}"


# --- a real Prometheus scraping a real pipeline ---


class Prometheus:
    """A ``prometheus`` server on 127.0.0.1 scraping ``target`` every second, with the deploy alert rules."""

    def __init__(self, binary: str, workdir: Path, target: str):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job in ("maskwatch-ingest", "maskwatch-worker", "maskwatch-publisher")
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=(workdir / "prometheus.log").open("wb"),
        )  # fmt: skip
        self.log = workdir / "prometheus.log"

    def get(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> dict:
        return self.get("/api/v1/query", query=expr)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def prometheus_scraping(tmp_path: Path) -> Iterator[tuple[Prometheus, int]]:
    binary = shutil.which("prometheus")
    if not binary:
        pytest.skip("prometheus not installed (Debian: apt-get install prometheus)")
    metrics_port = free_port()
    server = Prometheus(binary, tmp_path, f"127.0.0.1:{metrics_port}")
    try:
        wait_for(server.ready, 30, what="prometheus ready")
        yield server, metrics_port
    finally:
        server.stop()


def test_every_dashboard_and_alert_expression_returns_data_from_a_pipeline_run(
    prometheus_scraping, redis_url, weights_dir, videos, tmp_path
) -> None:
    from tests.test_violations import bare_then_masked_script, make_results, publish_all, push

    prom, metrics_port = prometheus_scraping
    ports = {"metrics_port": metrics_port}
    clips = {"dir": str(tmp_path / "clips"), "pre_roll_s": 1.0, "post_roll_s": 1.0}
    video = videos / "bare_then_masked_720p.mp4"
    s = make_settings(redis_url, weights_dir, cameras=[{"id": "prom-door", "url": str(video), "fps": 5}],
                      ingest=ports, worker=ports, publisher=ports, clips=clips)  # fmt: skip
    serve_metrics(metrics_port, "test")  # before the three stages race for the port
    assert run_all(s, stop=threading.Event()) == 0, "the real pipeline processed the video"
    # Violations, clips and compliance whatever the default classifier: scripted results, real publisher.
    client = redis.Redis.from_url(redis_url)
    push(client, make_results("prom-scripted", video, bare_then_masked_script))
    publish_all(make_settings(redis_url, clips=clips), client, "prom-scripted", 45,
                until=lambda docs: any(d["type"] == "clip_ready" for d in docs))  # fmt: skip
    done = time.time()

    def scraped_after_run() -> bool:
        targets = prom.get("/api/v1/targets")["data"]["activeTargets"]
        return all(t["health"] == "up" for t in targets) and all(
            _ts(t["lastScrape"]) > done + 1 for t in targets
        )

    wait_for(scraped_after_run, 30, what="scrapes after the run")
    assert prom.get("/api/v1/label/camera/values", **{"match[]": "maskwatch_camera_up"})["data"], (
        "$camera variable"
    )
    empty, failed = [], []
    for title, expr in dashboard_exprs():
        answer = prom.query(with_variables(expr))
        if answer["status"] != "success":
            failed.append(f"{title}: {expr}: {answer.get('error')}")
        elif not answer["data"]["result"]:
            empty.append(f"{title}: {expr}")
    for rule in alert_rules():
        answer = prom.query(rule["expr"])
        if answer["status"] != "success":
            failed.append(f"alert {rule['alert']}: {answer.get('error')}")
    assert not failed, "\n".join(failed)
    assert not empty, "expressions without data:\n" + "\n".join(empty)

    def rules_evaluated() -> list[dict]:
        rules = [r for g in prom.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return (
            rules
            if all(r.get("lastEvaluation", "").startswith("2") and r["health"] != "unknown" for r in rules)
            else []
        )

    rules = wait_for(rules_evaluated, 20, what="alert rules evaluated")
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # Each metric the rules use has series, so no rule is silently watching nothing; except counters that
    # get their first series with their first event (a clean run dead-letters and skips nothing).
    event_only = {"maskwatch_deadletter_total", "maskwatch_worker_frames_skipped_total"}
    for metric in sorted(
        {m for r in alert_rules() for m in re.findall(r"\bmaskwatch_[a-z0-9_]+", r["expr"])} - event_only
    ):
        assert prom.query(metric)["data"]["result"], f"no series of {metric} for the alert rules"


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(
        text.replace("Z", "+00:00")[:26] + "+00:00" if "." in text else text
    ).timestamp()

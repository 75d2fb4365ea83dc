"""Stand-ins for ``MLClient``: the Azure ML operations the product calls, without a workspace.

``FakeCloud`` stands where ``MLClient`` would: it records every call in order and checks what Azure ML checks
(traffic sums to 100, mirrored deployments take no live traffic, no mirrored traffic on Kubernetes, no deleting a
deployment with traffic). Each deployment it "provisions" is served on 127.0.0.1 by the project's real scoring
code with the registered model it names, behind the endpoint key: the product's own smoke test decides pass or
fail. A "broken" deployment serves a different model under the expected name, the way a bad image or environment
would. ``TaggedModels`` is ``MLClient.models`` with tags that persist.
"""

from __future__ import annotations

import copy
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from amlops.azure import operations
from amlops.core.settings import ScoringSettings
from amlops.scoring.model import load_model
from amlops.scoring.service import ScoringService
from tests.support.project import CONTRACT

#: The registered model's name: the test project's.
MODEL = CONTRACT.name
#: The primary key of every fake endpoint.
KEY = "test-primary-key-0123456789"


class Poller:
    """What an SDK ``begin_*`` call returns: ``result()`` gives the value or raises the error."""

    def __init__(self, value: Any = None, error: Exception | None = None):
        self.value, self.error = value, error

    def result(self) -> Any:
        if self.error:
            raise self.error
        return self.value


def _http_error(message: str) -> Exception:
    from azure.core.exceptions import HttpResponseError

    return HttpResponseError(message=message)


class FakeCloud:
    """The MLClient operation attributes the product uses, with an HTTP front end for the deployments."""

    def __init__(self, models: dict[str, Path], wrong_model: Path):
        self.models = models
        self.wrong_model = wrong_model
        self.events: list[tuple] = []
        self.endpoints: dict[str, Any] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.services: dict[tuple[str, str], ScoringService] = {}
        self.created_endpoints: list[Any] = []
        self.created_deployments: list[Any] = []
        self.fail_provisioning: set[str] = set()
        self.serve_wrong_model: set[str] = set()
        self.break_at: tuple[str, int] | None = None
        #: Requests routed by the traffic an endpoint had before its last change, as while Azure's routing converges.
        self.routing_lag = 0
        self.stale_routes: dict[str, list] = {}
        self.lock = threading.Lock()
        self.online_endpoints = FakeEndpoints(self)
        self.online_deployments = FakeDeployments(self)
        self.models_ops = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def uri(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{endpoint}/score"

    def route(self, endpoint: str) -> str | None:
        traffic = {k: v for k, v in (self.endpoints[endpoint].traffic or {}).items() if v > 0}
        stale = self.stale_routes.get(endpoint)
        if stale and stale[1] > 0:
            stale[1] -= 1
            traffic = stale[0]
        return max(traffic, key=traffic.get) if traffic else None

    def host(self, endpoint: str, deployment: Any) -> None:
        """Start serving a deployment: the model it names, with the limits its environment variables set."""
        _, name, version = str(deployment.model).split(":")
        folder = self.wrong_model if deployment.name in self.serve_wrong_model else self.models[version]
        limits = ScoringSettings(
            **{
                key.removeprefix("AMLOPS_SCORING_").lower(): value
                for key, value in (deployment.environment_variables or {}).items()
            }
        )
        self.services[(endpoint, deployment.name)] = ScoringService(load_model(folder, name, version), limits)

    def traffic_log(self) -> list[dict]:
        return [event[2] for event in self.events if event[0] == "endpoint"]

    def position(self, event: tuple) -> int:
        return self.events.index(event)


def _handler(cloud: FakeCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self._send(401, {"message": "key missing or wrong"})
                return
            endpoint = self.path.strip("/").split("/")[0]
            deployment = self.headers.get(operations.DEPLOYMENT_HEADER) or cloud.route(endpoint)
            cloud.events.append(("score", endpoint, deployment))
            service = cloud.services.get((endpoint, deployment))
            if service is None:
                self._send(404, {"message": f"no deployment {deployment}"})
                return
            self._send(*service.handle(body))

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class FakeEndpoints:
    """``MLClient.online_endpoints`` of a ``FakeCloud``."""

    def __init__(self, cloud: FakeCloud):
        self.cloud = cloud

    def get(self, name: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if name not in self.cloud.endpoints:
            raise ResourceNotFoundError(f"endpoint {name} not found")
        return copy.deepcopy(self.cloud.endpoints[name])

    def begin_create_or_update(self, endpoint: Any) -> Poller:
        cloud = self.cloud
        traffic = {k: int(v) for k, v in (endpoint.traffic or {}).items()}
        mirror = dict(endpoint.mirror_traffic or {})
        known = cloud.deployments.get(endpoint.name, {})
        if sum(traffic.values()) not in (0, 100) or set(traffic) - set(known):
            return Poller(error=_http_error(f"invalid traffic {traffic} for deployments {sorted(known)}"))
        if mirror and type(endpoint).__name__ == "KubernetesOnlineEndpoint":
            return Poller(error=_http_error("mirror traffic is not supported for Kubernetes online endpoints"))
        if any(traffic.get(name, 0) > 0 for name in mirror):
            return Poller(error=_http_error("a deployment with live traffic cannot receive mirrored traffic"))
        previous = cloud.endpoints.get(endpoint.name)
        if cloud.routing_lag and previous is not None and dict(previous.traffic or {}) != traffic:
            cloud.stale_routes[endpoint.name] = [
                {k: v for k, v in previous.traffic.items() if v > 0},
                cloud.routing_lag,
            ]
        cloud.created_endpoints.append(copy.deepcopy(endpoint))
        stored = copy.deepcopy(endpoint)
        stored._scoring_uri = cloud.uri(endpoint.name)  # read-only fields the service fills in
        stored._provisioning_state = "Succeeded"
        cloud.endpoints[endpoint.name] = stored
        cloud.deployments.setdefault(endpoint.name, {})
        cloud.events.append(("endpoint", endpoint.name, traffic, mirror))
        if cloud.break_at and traffic.get(cloud.break_at[0]) == cloud.break_at[1]:
            cloud.serve_wrong_model.add(cloud.break_at[0])
            cloud.host(endpoint.name, known[cloud.break_at[0]])
        return Poller(copy.deepcopy(stored))

    def get_keys(self, name: str) -> Any:
        from azure.ai.ml.entities import EndpointAuthKeys

        return EndpointAuthKeys(primary_key=KEY, secondary_key="test-secondary-key")


class FakeDeployments:
    """``MLClient.online_deployments`` of a ``FakeCloud``: a deployment created is served at once."""

    def __init__(self, cloud: FakeCloud):
        self.cloud = cloud

    def begin_create_or_update(self, deployment: Any) -> Poller:
        cloud = self.cloud
        endpoint = deployment.endpoint_name
        cloud.events.append(("create_deployment", endpoint, deployment.name))
        cloud.created_deployments.append(copy.deepcopy(deployment))
        stored = copy.deepcopy(deployment)
        cloud.deployments.setdefault(endpoint, {})[deployment.name] = stored
        if deployment.name in cloud.fail_provisioning:
            stored._provisioning_state = "Failed"  # read-only fields the service fills in
            return Poller(error=_http_error("ResourceNotReady: the scoring container crashed during init()"))
        stored._provisioning_state = "Succeeded"
        cloud.host(endpoint, stored)
        return Poller(copy.deepcopy(stored))

    def get(self, name: str, endpoint_name: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return copy.deepcopy(self.cloud.deployments[endpoint_name][name])
        except KeyError:
            raise ResourceNotFoundError(f"deployment {name} not found") from None

    def list(self, endpoint_name: str) -> list[Any]:
        return [copy.deepcopy(item) for item in self.cloud.deployments.get(endpoint_name, {}).values()]

    def begin_delete(self, name: str, endpoint_name: str) -> Poller:
        cloud = self.cloud
        if cloud.endpoints[endpoint_name].traffic.get(name, 0) > 0:
            return Poller(error=_http_error(f"deployment {name} still has traffic"))
        cloud.events.append(("delete_deployment", endpoint_name, name))
        del cloud.deployments[endpoint_name][name]
        cloud.endpoints[endpoint_name].traffic.pop(name, None)  # as the service does
        cloud.services.pop((endpoint_name, name), None)
        return Poller()

    def get_logs(self, name: str, endpoint_name: str, lines: int = 100) -> str:
        return "init(): loading model"


class TaggedModels:
    """``MLClient.models`` with tags that persist, for the versions of ``folders``."""

    def __init__(self, folders: dict[str, Path], store: Path | None = None):
        self.folders = folders
        self.tags: dict[str, dict[str, str]] = {version: {} for version in folders}
        self.store = store  # where versions registered from a local folder keep their files

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        version = version or max(self.folders)
        if version not in self.folders:
            raise ResourceNotFoundError(f"model {name}:{version} not found")
        return SimpleNamespace(name=name, version=version, tags=dict(self.tags[version]), path=f"azureml:{version}")

    def list(self, name: str) -> list[Any]:
        return [self.get(name, version) for version in self.folders]

    def create_or_update(self, model: Any) -> Any:
        if model.version is None:  # a new version from a local folder, which the SDK uploads
            version = str(max(int(v) for v in self.folders if v.isdigit()) + 1)
            self.folders[version] = shutil.copytree(model.path, self.store / version / "model")
            assert model.type == "mlflow_model"
            model = SimpleNamespace(name=model.name, version=version, tags=model.tags, path=f"azureml:{version}")
        self.tags[model.version] = {k: str(v) for k, v in model.tags.items()}
        return model

    def download(self, name: str, version: str, download_path: str) -> None:
        shutil.copytree(self.folders[version], Path(download_path) / name / "model", dirs_exist_ok=True)

"""Entry script of the real-time service (``inferenceConfig.yml``: ``entryScript``).

The Azure ML inference server imports this file, calls ``init()`` once per worker, then ``run()`` with
each request body as a string. Azure ML mounts the registered model under ``AZUREML_MODEL_DIR``; the
local endpoint stages the same layout. All logic lives in :mod:`amlops.scoring`.
"""

from azureml_inference_server_http.api.aml_response import AMLResponse

from amlops.scoring import ScoringService

service: ScoringService | None = None


def init() -> None:
    """Load the model once, from ``$AZUREML_MODEL_DIR``."""
    global service
    service = ScoringService.from_environment()


def run(raw_data: str) -> dict | AMLResponse:
    """Score ``{"data": [...]}``; malformed input gets a 4xx with ``{"message": ...}``."""
    status, payload = service.handle(raw_data)
    if status == 200:
        return payload
    return AMLResponse(payload, status, json_str=True)

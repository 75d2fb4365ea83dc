"""Entry script of the real-time service (``inferenceConfig.yml``: ``entryScript``).

The Azure ML inference server imports this file, calls ``init()`` once per worker, then ``run()`` for each
request. Azure ML mounts the registered model under ``AZUREML_MODEL_DIR``; the local endpoint stages the
same layout. All logic lives in :mod:`amlops.scoring`; what makes it fast is described in
``docs/performance.md``.
"""

from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse
from flask import Response

from amlops.scoring import connections
from amlops.scoring.requests import request_body
from amlops.scoring.service import ScoringService, drop_response_notices

service: ScoringService | None = None
#: What AMLResponse would add: the server reads it on errors only.
_HEADERS = {"x-ms-run-function-failed": "False"}


def init() -> None:
    """Load the model once, from ``$AZUREML_MODEL_DIR``; bound how long a client may stall a connection.

    The server's notice of each ready-made answer is kept out of its log (each request's access line stays).
    """
    global service
    service = ScoringService.from_environment()
    connections.protect(service.limits)
    drop_response_notices()


@rawhttp
def run(request) -> dict | Response:
    """Score ``{"data": [...]}``; malformed input gets a 4xx with ``{"message": ...}``.

    ``@rawhttp``: the server hands over the Flask request, and the body is read as the bytes that arrived
    (it would otherwise decode them to a ``str`` that :mod:`amlops.scoring` encodes again: ~4% of a
    1,000-row request). Called in-process, ``request`` may be the body itself (``str`` or ``bytes``).

    A small answer is returned as a dict (the server serialises it); a large one arrives already serialised
    and is sent as is (a plain Flask response: ~10 µs cheaper to build than an ``AMLResponse``).
    """
    if isinstance(request, str | bytes):
        raw = request
    elif request.method == "POST":
        raw = request_body(request)
    elif request.method == "OPTIONS":
        return AMLResponse("", 200)  # what the server answers by itself without @rawhttp (CORS preflight)
    else:  # GET: the query parameters as a JSON object, exactly as the server builds it without @rawhttp
        from azureml_inference_server_http.server.input_parsers import JsonStringInput

        raw = JsonStringInput("raw")._parse_get_input(request)["raw"]
    status, answer = service.respond(raw)
    if type(answer) is bytes:
        return Response(answer, status, _HEADERS, mimetype="application/json")
    if status == 200:
        return answer
    return AMLResponse(answer, status, json_str=True)

"""The Open Inference Protocol (KServe's "V2" REST protocol: kserve/open-inference-protocol,
specification/protocol/inference_rest.md) beside /v1, from the same schema, predictor, decision policy, metrics
and prediction log. docs/serving.md describes it.

An inference request's tensors become records that `RequestSchema` validates, so both protocols accept and refuse
the same values. Two tabular forms: one input per feature, named after it, of shape [N] or [N, 1] (MLServer's pandas
codec), or one column-ordered input of shape [N, n_features] whose BYTES rows hold the features in params.yaml's
order, numbers as numbers (KServe's sklearn examples send one [N, n_features] input). Refusals are the protocol's
`{"error": "<message>"}`, with the /v1 sentence naming the field, the value and what was expected."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any, Protocol

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from conveyor.config import Settings
from conveyor.serve import loading, routes
from conveyor.serve.fast import SMALL_BATCH
from conveyor.serve.loading import LoadedModel
from conveyor.serve.metrics import Metrics, Receive, Scope
from conveyor.serve.recorder import Recorder
from conveyor.serve.schema import ABSENT, BadRequest, Problem, Record, RequestSchema, parse

log = logging.getLogger("conveyor.serve")

SERVER_NAME = "conveyor"
PLATFORM = "sklearn_skops"  # the protocol's "<project>_<format>"
BYTES = "BYTES"
FP64 = "FP64"
NUMERIC = ("FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8")
PROBABILITY, LABEL = "probability", "label"
OUTPUTS = (PROBABILITY, LABEL)
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
INPUT_EXPECTED = {
    "name": "a string",
    "shape": "an array of 1 or 2 non-negative integers",
    "datatype": "a string",
    "data": "an array (the tensor's elements, flat or nested)",
}
REQUIRED_INPUT_KEYS = frozenset(INPUT_EXPECTED)
OUTPUT_KEYS = frozenset({"name", "parameters"})
JSON = "application/json"

ReadBody = Callable[[Scope, Receive], Awaitable[bytes]]
Field = Callable[[int, str], str]  # (row, feature) -> how a problem names that value in the request


class Serving(Protocol):
    """What the app knows of its model: the loaded one, or why there is none yet."""

    model: LoadedModel | None

    def not_ready_body(self) -> dict[str, str]: ...


def paths(model_name: str) -> tuple[str, ...]:
    """The V2 paths as requests spell them for the served model: the metrics' route labels."""
    models = (routes.V2_MODEL, routes.V2_MODEL_READY, routes.V2_INFER)
    return (routes.V2, routes.V2_LIVE, routes.V2_READY, *(path.format(name=model_name) for path in models))


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def error_body(exc: BadRequest) -> dict[str, str]:
    """The protocol's error object: the first problem's sentence, and how many more there were."""
    first = exc.problems[0].sentence()
    more = len(exc.problems) - 1
    return {"error": f"{first[:-1]} ({more} more problems)." if more else first}


def _datatype(feature_type: str) -> str:
    return BYTES if feature_type == "category" else FP64


def _tensor(name: str, datatype: str, shape: list[int], data: list[Any] | None = None) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if data is not None:
        tensor["data"] = data
    return tensor


def _elements(data: list[Any], shape: list[int]) -> list[Any] | None:
    """The elements of `data` in row-major order when it holds a tensor of `shape` (2 dimensions at most), flat
    or nested as the protocol allows; None when it does not."""
    if len(data) == math.prod(shape) and not any(isinstance(value, list) for value in data):
        return data
    if len(shape) == 2 and len(data) == shape[0]:
        rows = [row for row in data if isinstance(row, list) and len(row) == shape[1]]
        if len(rows) == len(data) and not any(isinstance(value, list) for row in rows for value in row):
            return [value for row in rows for value in row]
    return None


class OpenInference:
    """The V2 routes of one app. `read_body` reads a request's body under the app's limits (size, time, Content-Type)."""

    def __init__(
        self,
        settings: Settings,
        schema: RequestSchema,
        serving: Serving,
        metrics: Metrics,
        recorder: Recorder | None,
        read_body: ReadBody,
        request_id_key: str,
    ) -> None:
        self.name = settings.model.name
        self.schema, self.serving, self.metrics, self.recorder = schema, serving, metrics, recorder
        self.read_body, self.request_id_key = read_body, request_id_key
        self.features = list(schema.features)
        self.datatypes = {name: _datatype(f.type) for name, f in schema.features.items()}
        self.max_batch = schema.max_batch
        self.label_names = (settings.serve.prediction_log.negative_label, settings.data.positive_label)
        self.examples = loading.probe_records(settings, rows=2)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(routes.V2, self.server, methods=["GET"]),
            Route(routes.V2_LIVE, self.live, methods=["GET"]),
            Route(routes.V2_READY, self.ready, methods=["GET"]),
            Route(routes.V2_MODEL, self.model, methods=["GET"]),
            Route(routes.V2_MODEL_READY, self.model_ready, methods=["GET"]),
            Route(routes.V2_INFER, self.infer, methods=["POST"]),
        ]

    async def server(self, _: Request) -> Response:
        return _json({"name": SERVER_NAME, "version": version(SERVER_NAME), "extensions": []})

    async def live(self, _: Request) -> Response:
        return _json({"live": True})

    async def ready(self, _: Request) -> Response:
        if self.serving.model is None:
            return _json(self.serving.not_ready_body(), 503)
        return _json({"ready": True})

    def _served(self, request: Request) -> LoadedModel | Response:
        """The model the path names, or the answer that it is unknown (404) or not loaded yet (503)."""
        name = request.path_params["name"]
        if name != self.name:
            problem = Problem("model name", name, f"{self.name!r}, the one model this server serves", "is unknown")
            return _json({"error": problem.sentence()}, 404)
        loaded = self.serving.model
        if loaded is None:
            return _json(self.serving.not_ready_body(), 503)
        return loaded

    async def model(self, request: Request) -> Response:
        loaded = self._served(request)
        if isinstance(loaded, Response):
            return loaded
        return _json(
            {
                "name": self.name,
                "versions": [loaded.version],
                "platform": PLATFORM,
                "inputs": [_tensor(name, datatype, [-1]) for name, datatype in self.datatypes.items()],
                "outputs": [_tensor(PROBABILITY, FP64, [-1]), _tensor(LABEL, BYTES, [-1])],
            }
        )

    async def model_ready(self, request: Request) -> Response:
        loaded = self._served(request)
        if isinstance(loaded, Response):
            return loaded
        return _json({"name": self.name, "ready": True})

    async def infer(self, request: Request) -> Response:
        loaded = self._served(request)
        if isinstance(loaded, Response):
            return loaded
        try:
            payload = parse(await self.read_body(request.scope, request.receive))
            request_id, records, wanted = self.records(payload)
            if len(records) > SMALL_BATCH:  # mostly GIL-free tree work: let other requests run meanwhile
                proba = await run_in_threadpool(loaded.predictor.proba, records)
            else:
                proba = loaded.predictor.proba(records)
        except BadRequest as exc:
            answer = _json(error_body(exc), exc.status)
            answer.headers.update({name.decode(): value.decode() for name, value in exc.headers})
            return answer
        except Exception:
            log.exception("v2 infer failed")
            return _json({"error": "internal error; the server log has the details."}, 500)
        scores = proba.tolist()
        self.metrics.observe_scores(scores)
        labels = loaded.decision.record_labels(records, proba).tolist()
        logged_id = request.scope[self.request_id_key]
        if self.recorder is not None and self.recorder.sampled():
            self.recorder.offer(logged_id, loaded.version, records, scores, labels, False)
        rows = [len(records)]
        outputs = {
            PROBABILITY: _tensor(PROBABILITY, FP64, rows, scores),
            LABEL: _tensor(LABEL, BYTES, rows, [self.label_names[label] for label in labels]),
        }
        return _json(
            {
                "model_name": self.name,
                "model_version": loaded.version,
                "id": logged_id if request_id is None else request_id,
                "outputs": [outputs[name] for name in wanted],
            }
        )

    def records(self, payload: Any) -> tuple[str | None, list[Record], list[str]]:
        """(the request's id, its validated records, the outputs it asks for); BadRequest (400) naming every
        problem found."""
        if not isinstance(payload, dict):
            raise BadRequest(400, [Problem("body", payload, 'a JSON object with "inputs" (an inference request)')])
        problems = [
            Problem(key, payload[key], "only id, parameters, inputs and outputs", "is unknown")
            for key in payload
            if key not in REQUEST_KEYS
        ]
        request_id = payload.get("id")
        if "id" in payload and not isinstance(request_id, str):
            problems.append(Problem("id", request_id, "a string"))
        if not isinstance(payload.get("parameters", {}), dict):
            problems.append(Problem("parameters", payload["parameters"], "a JSON object"))
        wanted = self._outputs(payload.get("outputs", [{"name": name} for name in OUTPUTS]), problems)
        inputs = payload.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            shown = ABSENT if "inputs" not in payload else inputs
            problems.append(Problem("inputs", shown, "an array of input tensors, one per feature or one in all"))
            raise BadRequest(400, problems)
        tensors = [self._input(i, tensor, problems) for i, tensor in enumerate(inputs)]
        if problems:
            raise BadRequest(400, problems)
        if len(inputs) == 1 and inputs[0]["name"] not in self.datatypes:
            rows, fields = self._columns(inputs[0])
        else:
            rows, fields = self._per_feature(inputs, tensors)
        return request_id, self.schema.validate_rows(rows, fields, 400), wanted

    def _outputs(self, outputs: Any, problems: list[Problem]) -> list[str]:
        if not isinstance(outputs, list):
            problems.append(Problem("outputs", outputs, "an array of the outputs wanted"))
            return []
        wanted = []
        expected = f"an object with the name of an output ({', '.join(OUTPUTS)}) and optional parameters"
        for i, output in enumerate(outputs):
            if not isinstance(output, dict) or output.get("name") not in OUTPUTS or set(output) - OUTPUT_KEYS:
                problems.append(Problem(f"outputs[{i}]", output, expected))
            elif not isinstance(output.get("parameters", {}), dict):
                problems.append(Problem(f"outputs[{i}].parameters", output["parameters"], "a JSON object"))
            elif output["name"] not in wanted:
                wanted.append(output["name"])
        return wanted

    def _input(self, i: int, tensor: Any, problems: list[Problem]) -> list[int]:
        """The input's shape, once its fields have the protocol's types; else [] and its problems appended."""
        if isinstance(tensor, dict) and tensor.keys() <= INPUT_KEYS and tensor.keys() >= REQUIRED_INPUT_KEYS:
            shape = tensor["shape"]
            if (
                isinstance(tensor["name"], str)
                and isinstance(tensor["datatype"], str)
                and isinstance(tensor["data"], list)
                and isinstance(shape, list)
                and len(shape) in (1, 2)
                and all(type(n) is int and n >= 0 for n in shape)  # type(): true is no dimension
                and isinstance(tensor.get("parameters", {}), dict)
            ):
                return shape
        problems.extend(self._input_problems(f"inputs[{i}]", tensor))
        return []

    @staticmethod
    def _input_problems(where: str, tensor: Any) -> list[Problem]:
        if not isinstance(tensor, dict):
            return [Problem(where, tensor, "an input tensor: an object with name, shape, datatype and data")]
        problems = [
            Problem(f"{where}.{key}", tensor[key], "only name, shape, datatype, parameters and data", "is unknown")
            for key in tensor
            if key not in INPUT_KEYS
        ]
        for key, words in INPUT_EXPECTED.items():
            if key not in tensor:
                problems.append(Problem(f"{where}.{key}", ABSENT, words, "is missing"))
        shape = tensor.get("shape")
        if "shape" in tensor and not (
            isinstance(shape, list) and len(shape) in (1, 2) and all(type(n) is int and n >= 0 for n in shape)
        ):
            problems.append(Problem(f"{where}.shape", shape, INPUT_EXPECTED["shape"]))
        for key, kind in (("name", str), ("datatype", str), ("data", list)):
            if key in tensor and not isinstance(tensor[key], kind):
                problems.append(Problem(f"{where}.{key}", tensor[key], INPUT_EXPECTED[key]))
        if not isinstance(tensor.get("parameters", {}), dict):
            problems.append(Problem(f"{where}.parameters", tensor["parameters"], "a JSON object"))
        return problems

    def _rows(self, where: str, shape: list[int], expected: str, problems: list[Problem]) -> int:
        """N, the first dimension of `shape`; 0 and a problem when it is not from 1 to max_batch_records (`expected`
        says what the whole shape should be)."""
        if 1 <= shape[0] <= self.max_batch:
            return shape[0]
        problems.append(Problem(f"{where}.shape", shape, f"{expected} with N from 1 to {self.max_batch}"))
        return 0

    def _columns(self, tensor: dict[str, Any]) -> tuple[list[Record], Field]:
        """The records of one column-ordered input of shape [N, n_features]."""
        problems: list[Problem] = []
        width = len(self.features)
        expected = f"[N, {width}] (one column per feature, in the order of GET {routes.V2_MODEL})"
        if tensor["datatype"] != BYTES:
            problems.append(Problem("inputs[0].datatype", tensor["datatype"], f"{BYTES} for a column-ordered input"))
        shape = tensor["shape"]
        if len(shape) != 2 or shape[1] != width:
            raise BadRequest(400, [*problems, Problem("inputs[0].shape", shape, expected)])
        rows = self._rows("inputs[0]", shape, expected, problems)
        elements = _elements(tensor["data"], shape)
        if rows and elements is None:
            problems.append(Problem("inputs[0].data", ABSENT, f"{math.prod(shape)} elements, flat or as {rows} rows"))
        if problems or elements is None:
            raise BadRequest(400, problems)
        records = [dict(zip(self.features, elements[r * width : (r + 1) * width], strict=True)) for r in range(rows)]
        column = {name: j for j, name in enumerate(self.features)}
        return records, lambda row, name: f"inputs[0].data[{row}][{column[name]}] ({name})"

    def _per_feature(self, inputs: list[dict[str, Any]], shapes: list[list[int]]) -> tuple[list[Record], Field]:
        """The records of one input per feature, each of shape [N] or [N, 1]."""
        problems: list[Problem] = []
        columns: dict[str, list[Any]] = {}
        index: dict[str, int] = {}
        count = None
        for i, (tensor, shape) in enumerate(zip(inputs, shapes, strict=True)):
            where, name = f"inputs[{i}]", tensor["name"]
            if name not in self.datatypes:
                expected = "a feature name (one input per feature): " + ", ".join(self.features)
                problems.append(Problem(f"{where}.name", name, expected, "is unknown"))
                continue
            if name in columns:
                problems.append(Problem(f"{where}.name", name, "one input per feature", "is repeated"))
                continue
            wanted = self.datatypes[name]
            allowed = (BYTES,) if wanted == BYTES else NUMERIC
            if tensor["datatype"] not in allowed:
                expected = (
                    f"{BYTES} for the categorical feature {name}"
                    if wanted == BYTES
                    else f"{FP64} (or FP32, FP16, an INT or UINT type) for the numeric feature {name}"
                )
                problems.append(Problem(f"{where}.datatype", tensor["datatype"], expected))
            if len(shape) == 2 and shape[1] != 1:
                problems.append(Problem(f"{where}.shape", shape, "[N] or [N, 1]"))
                continue
            rows = self._rows(where, shape, "[N] or [N, 1]", problems)
            if rows and count is not None and rows != count:
                problems.append(Problem(f"{where}.shape", shape, f"the N of every other input ({count})"))
            count = count or rows
            elements = _elements(tensor["data"], shape)
            if rows and elements is None:
                problems.append(Problem(f"{where}.data", ABSENT, f"{rows} elements, flat or as {rows} rows of 1"))
            columns[name], index[name] = elements or [], i
        if not problems:
            words = "tensor of shape [N] or [N, 1], one input per feature"
            problems.extend(
                Problem(f"input {name!r}", ABSENT, f"a {self.datatypes[name]} {words}", "is missing")
                for name in self.features
                if name not in columns
            )
        if problems:
            raise BadRequest(400, problems)
        records = [{name: columns[name][r] for name in self.features} for r in range(count or 0)]
        return records, lambda row, name: f"inputs[{index[name]}].data[{row}] ({name})"

    def document(self, spec: dict[str, Any], request_id: dict[str, Any]) -> None:
        """Add the V2 operations and their schemas to the app's OpenAPI document (`request_id`: the optional
        x-request-id header parameter, as /v1 documents it)."""
        ref = "#/components/schemas/{}".format
        header = request_id["name"]

        def answer(description: str, schema: str) -> dict[str, Any]:
            return {
                "description": description,
                "headers": {header: {"description": "the request id", "schema": {"type": "string"}}},
                "content": {JSON: {"schema": {"$ref": ref(schema)}}},
            }

        name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": [self.name]}}
        unknown = answer("no model of that name is served", "V2Error")
        not_ready = answer("the model is not ready", "V2Error")

        def get(summary: str, ok: str, *, model: bool = False, ready: bool = False) -> dict[str, Any]:
            responses = {"200": answer("OK", ok)}
            if model:
                responses["404"] = unknown
            if model or ready:
                responses["503"] = not_ready
            parameters = [request_id, name] if model else [request_id]
            return {"get": {"summary": summary, "tags": ["v2"], "parameters": parameters, "responses": responses}}

        infer = {
            "summary": "Inference: one input tensor per feature, or one column-ordered BYTES input",
            "tags": ["v2"],
            "operationId": "v2_infer",
            "parameters": [request_id, name],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"$ref": ref("V2InferenceRequest")}, "examples": self._examples()}},
            },
            "responses": {
                "200": answer(
                    "the outputs: probability (FP64) and label (BYTES), one element per row", "V2InferenceResponse"
                ),
                "400": answer("the body is not an inference request this model accepts", "V2Error"),
                "404": unknown,
                "408": answer("the body did not arrive within serve.body_timeout_s", "V2Error"),
                "413": answer("the body is too large", "V2Error"),
                "415": answer("the body is not sent as application/json", "V2Error"),
                "503": answer("the model is not ready, or the server is busy (see Retry-After)", "V2Error"),
            },
        }
        spec["paths"].update(
            {
                routes.V2: get("Server metadata", "V2ServerMetadata"),
                routes.V2_LIVE: get("The server is alive", "V2Live"),
                routes.V2_READY: get("The model is loaded and warmed", "V2Ready", ready=True),
                routes.V2_MODEL: get(
                    "Model metadata: one input per feature, the outputs", "V2ModelMetadata", model=True
                ),
                routes.V2_MODEL_READY: get("The model is ready", "V2ModelReady", model=True),
                routes.V2_INFER: {"post": infer},
            }
        )
        spec["components"]["schemas"].update(self._schemas())

    def _examples(self) -> dict[str, Any]:
        """Two valid records in both forms: the documentation's examples, which schemathesis sends as they are."""
        rows = self.examples
        per_feature = [
            _tensor(name, datatype, [len(rows)], [row[name] for row in rows])
            for name, datatype in self.datatypes.items()
        ]
        columns = [[row[name] for name in self.features] for row in rows]
        column_ordered = _tensor("input-0", BYTES, [len(rows), len(self.features)], columns)
        return {
            "one input per feature": {"value": {"id": "42", "inputs": per_feature}},
            "one column-ordered input": {"value": {"inputs": [column_ordered], "outputs": [{"name": PROBABILITY}]}},
        }

    def _schemas(self) -> dict[str, Any]:
        ref = "#/components/schemas/{}".format
        string, boolean, anything = {"type": "string"}, {"type": "boolean"}, {"type": "object"}
        shape = {"type": "array", "items": {"type": "integer"}}

        def obj(required: list[str], **properties: Any) -> dict[str, Any]:
            return {"type": "object", "required": required, "properties": properties}

        tensor = obj(["name", "datatype", "shape"], name=string, datatype=string, shape=shape)
        element = {"anyOf": [{"$ref": ref("V2TensorData")}, {"type": ["number", "string", "boolean", "null"]}]}
        request_input = obj(
            ["name", "shape", "datatype", "data"],
            name={**string, "description": "a feature's name, or any other name for one column-ordered input"},
            shape={**shape, "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 2},
            datatype={"type": "string", "enum": [BYTES, *NUMERIC]},
            parameters=anything,
            data={"$ref": ref("V2TensorData")},
        )
        request_output = obj(["name"], name={"type": "string", "enum": list(OUTPUTS)}, parameters=anything)
        request = obj(
            ["inputs"],
            id=string,
            parameters=anything,
            inputs={"type": "array", "items": {"$ref": ref("V2RequestInput")}, "minItems": 1},
            outputs={"type": "array", "items": {"$ref": ref("V2RequestOutput")}},
        )
        output = obj(
            ["name", "datatype", "shape", "data"], name=string, datatype=string, shape=shape, data={"type": "array"}
        )
        schemas = {
            "V2TensorData": {"type": "array", "items": element},
            "V2RequestInput": request_input,
            "V2RequestOutput": request_output,
            "V2InferenceRequest": request,
            "V2InferenceResponse": obj(
                ["model_name", "outputs"],
                model_name=string,
                model_version=string,
                id=string,
                outputs={"type": "array", "items": {"$ref": ref("V2ResponseOutput")}},
            ),
            "V2ResponseOutput": output,
            "V2TensorMetadata": tensor,
            "V2ModelMetadata": obj(
                ["name", "platform", "inputs", "outputs"],
                name=string,
                versions={"type": "array", "items": string},
                platform=string,
                inputs={"type": "array", "items": {"$ref": ref("V2TensorMetadata")}},
                outputs={"type": "array", "items": {"$ref": ref("V2TensorMetadata")}},
            ),
            "V2ServerMetadata": obj(
                ["name", "version", "extensions"],
                name=string,
                version=string,
                extensions={"type": "array", "items": string},
            ),
            "V2Live": obj(["live"], live=boolean),
            "V2Ready": obj(["ready"], ready=boolean),
            "V2ModelReady": obj(["name", "ready"], name=string, ready=boolean),
            "V2Error": obj(
                ["error"],
                error={**string, "description": "one sentence naming the field, the value and what was expected"},
            ),
        }
        for key in ("V2RequestInput", "V2RequestOutput", "V2InferenceRequest"):  # what the server refuses
            schemas[key]["additionalProperties"] = False
        return schemas

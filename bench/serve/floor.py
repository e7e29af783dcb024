"""The HTTP floor: a FastAPI endpoint that reads and parses the same body as /v1/predict and returns a constant.
Served by the same uvicorn settings as the API, it is the most any Python model endpoint here can do."""

import orjson
from fastapi import FastAPI, Request, Response

CONSTANT = orjson.dumps({"probability": 0.5, "label": 0, "model_version": "floor"})

app = FastAPI()


@app.post("/v1/predict")
async def predict(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(CONSTANT, media_type="application/json")

"""The API's paths: the one place they are spelled. The Kubernetes probes, the canary analysis and the
tests refer to these values."""

HEALTH = "/healthz"
READY = "/readyz"
METRICS = "/metrics"
PREDICT = "/v1/predict"
MODEL = "/v1/model"
FEEDBACK = "/v1/feedback"

ALL = (HEALTH, READY, METRICS, PREDICT, MODEL, FEEDBACK)

# The Open Inference Protocol (KServe's V2 REST protocol, serve/v2.py), served beside /v1; {name} is params.yaml's
# model.name. The KServe variant's probes (k8s/kserve) point at the health routes.
V2 = "/v2"
V2_LIVE = "/v2/health/live"
V2_READY = "/v2/health/ready"
V2_MODEL = "/v2/models/{name}"
V2_MODEL_READY = "/v2/models/{name}/ready"
V2_INFER = "/v2/models/{name}/infer"

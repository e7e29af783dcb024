"""The API's paths: the one place they are spelled. The Kubernetes probes, the canary analysis and the
tests refer to these values."""

HEALTH = "/healthz"
READY = "/readyz"
METRICS = "/metrics"
PREDICT = "/v1/predict"
MODEL = "/v1/model"
FEEDBACK = "/v1/feedback"

ALL = (HEALTH, READY, METRICS, PREDICT, MODEL, FEEDBACK)

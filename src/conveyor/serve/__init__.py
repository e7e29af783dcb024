"""The model API: FastAPI app, request schema, safe loading, the fast exact predict path, and metrics."""

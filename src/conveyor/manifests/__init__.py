"""`conveyor manifests check`: render k8s/ and argocd/, validate them, run checkov, cross-check the app."""

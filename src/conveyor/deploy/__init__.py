"""GitOps delivery: environments change only by git commits to k8s/overlays."""

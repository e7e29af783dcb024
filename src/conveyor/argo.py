"""`conveyor argo ...`: the dvc.yaml DAG on Argo Workflows (hera is imported lazily)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_subparsers(dest="action", required=True, metavar="<action>")


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError(args.action)

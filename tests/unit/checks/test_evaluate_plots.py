"""evaluate's plots: the curve data files dvc.yaml's top-level `plots` read, and the PNGs, with real sklearn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from sklearn.metrics import roc_auc_score

from conveyor.checks import evaluate
from conveyor.config import Settings
from tests.conftest import ROOT

NAMES = ("not >50K", ">50K")


def predictions(seed: int, separation: float, rows: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.25).astype(np.int64)
    proba = np.clip(0.3 + separation * y + rng.normal(0, 0.2, rows), 0, 1)
    return y, proba, (proba >= 0.5).astype(np.int64)


def test_the_data_files_are_the_curves_dvc_yaml_declares(tmp_path: Path) -> None:
    y, proba, labels = predictions(0, 0.4)
    written = evaluate.write_plot_data(y, proba, labels, NAMES, tmp_path)

    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    for plot in (next(iter(item.values())) for item in declared):
        (path, column), *_ = plot["y"].items()
        table = pd.read_csv(tmp_path / Path(path).name)
        assert {plot["x"], column} <= set(table.columns), plot
        assert plot["title"] and plot["x_label"] and plot["y_label"] and plot["template"]
    assert {p.name for p in written} == {Path(next(iter(next(iter(i.values()))["y"]))).name for i in declared}

    roc = pd.read_csv(tmp_path / "roc.csv")
    assert len(roc) <= evaluate.CURVE_POINTS and roc.iloc[0][["fpr", "tpr"]].tolist() == [0, 0]
    assert roc.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1] and roc["fpr"].is_monotonic_increasing
    area = float(np.sum(np.diff(roc["fpr"]) * (roc["tpr"].to_numpy()[1:] + roc["tpr"].to_numpy()[:-1]) / 2))
    assert area == pytest.approx(roc_auc_score(y, proba), abs=0.005)  # thinned, the curve keeps its shape
    pr = pd.read_csv(tmp_path / "pr.csv")
    assert pr["recall"].is_monotonic_increasing and pr.iloc[-1]["recall"] == 1
    confusion = pd.read_csv(tmp_path / "confusion.csv")
    assert len(confusion) == len(y) and set(confusion["actual"]) == set(NAMES)
    assert (confusion["predicted"] == NAMES[1]).sum() == labels.sum()
    text = (tmp_path / "roc.csv").read_text()
    assert max(len(cell.split(".")[1]) for cell in text.replace("\n", ",").split(",") if "." in cell) <= 4


def test_the_class_names_come_from_params(settings: Settings) -> None:
    negative, positive = evaluate.class_names(settings)
    assert positive == settings.data.positive_label and positive in negative


def test_the_pngs_show_the_champion_beside_the_new_model(tmp_path: Path) -> None:
    y, proba, labels = predictions(0, 0.4)
    _, champion, _ = predictions(1, 0.2)
    alone = evaluate.write_pngs(y, proba, labels, NAMES, folder=tmp_path / "alone")
    both = evaluate.write_pngs(y, proba, labels, NAMES, ("champion v3", champion), tmp_path / "both")

    assert [p.name for p in alone] == ["roc.png", "pr.png", "calibration.png", "confusion.png"]
    champion_colour = (0xBF, 0x87, 0x00)  # the champion's curve
    for single, overlaid in zip(alone, both, strict=True):
        pixels = {n: np.asarray(Image.open(p).convert("RGB")) for n, p in (("alone", single), ("both", overlaid))}
        assert pixels["alone"].std() > 20  # drawn, not blank
        if single.name != "confusion.png":
            assert not (pixels["alone"] == champion_colour).all(axis=2).any()
            assert (pixels["both"] == champion_colour).all(axis=2).sum() > 100

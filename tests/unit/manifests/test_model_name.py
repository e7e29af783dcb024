"""params.yaml model.name is the only place the model's name is written: the Argo CD Applications and the release
files must name the same model, and `conveyor deploy` writes it from params.yaml."""

import shutil
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.deploy import release
from conveyor.manifests import contract
from tests.conftest import ROOT


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "argocd", tmp_path / "argocd")
    shutil.copytree(ROOT / "k8s" / "overlays", tmp_path / "k8s" / "overlays")
    return tmp_path


def _named(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"model": settings.model.model_copy(update={"name": name})})


def test_the_repository_names_the_params_model(settings: Settings, repo: Path) -> None:
    assert contract.model_name(repo, settings) == []


def test_a_renamed_model_in_params_fails_on_every_manifest_that_names_the_old_one(
    settings: Settings, repo: Path
) -> None:
    failures = contract.model_name(repo, _named(settings, "churn"))
    expected = [f"argocd/applications/{env}.yaml" for env in settings.deploy.environments]
    expected += [str(release.release_path(env)) for env in settings.deploy.environments]
    assert sorted(f.split(":")[0] for f in failures) == sorted(expected)
    assert failures[0].endswith(
        f"links to MLflow model {settings.model.name!r}, expected params.yaml model.name 'churn'."
    )


def test_a_manifest_edited_to_another_name_fails(settings: Settings, repo: Path) -> None:
    app = repo / "argocd/applications/staging.yaml"
    app.write_text(app.read_text().replace(f"/#/models/{settings.model.name}", "/#/models/other"))
    assert contract.model_name(repo, settings) == [
        f"argocd/applications/staging.yaml: links to MLflow model 'other', expected params.yaml model.name "
        f"{settings.model.name!r}."
    ]


def test_deploy_writes_the_params_name_into_the_release_file(settings: Settings, repo: Path) -> None:
    renamed = _named(settings, "churn")
    for env in settings.deploy.environments:
        path = repo / release.release_path(env)
        pinned = release.read(path)
        path.write_text(release.render(pinned, mlflow_ui=renamed.deploy.mlflow_ui, model_name=renamed.model.name))
    failures = contract.model_name(repo, renamed)
    assert failures and all(f.startswith("argocd/applications/") for f in failures)  # only the hand-kept apps


def test_the_application_link_must_be_exactly_the_params_model(settings: Settings) -> None:
    docs = [
        {
            "kind": "Application",
            "metadata": {
                "name": "conveyor-staging",
                "labels": {"conveyor.dev/environment": "staging"},
                "annotations": {
                    "link.argocd.argoproj.io/mlflow-model": (
                        f"{settings.deploy.mlflow_ui}/#/models/{settings.model.name}-old"
                    )
                },
            },
            "spec": {"source": {"path": "k8s/overlays/staging"}, "project": "conveyor"},
        }
    ]
    failures = list(contract._environment(docs[0], "staging", settings))
    assert any(f"expected '{settings.deploy.mlflow_ui}/#/models/{settings.model.name}'" in f for f in failures)

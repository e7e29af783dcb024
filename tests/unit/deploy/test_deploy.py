"""The deploy contracts without git: image references, release files and deploy-commit messages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conveyor.config import load_settings
from conveyor.deploy import history, release
from conveyor.deploy.history import Commit
from conveyor.deploy.image import parse_image
from conveyor.errors import ConveyorError
from tests.conftest import ROOT

DIGEST = "sha256:" + "ab" * 32
GOOD = f"ghcr.io/conveyor-org/conveyor:12-1a2b3c4@{DIGEST}"


def test_image_reference_parts() -> None:
    image = parse_image(GOOD)
    assert (image.repository, image.model_version, image.commit, image.digest) == (
        "ghcr.io/conveyor-org/conveyor",
        12,
        "1a2b3c4",
        DIGEST,
    )
    assert image.tagged == "ghcr.io/conveyor-org/conveyor:12-1a2b3c4"
    assert str(image) == GOOD


def test_image_reference_with_registry_port_and_nested_owner() -> None:
    image = parse_image(f"registry.example.com:5000/team/ml/conveyor:3-abcdef0@{DIGEST}")
    assert image.repository == "registry.example.com:5000/team/ml/conveyor"
    assert image.model_version == 3


@pytest.mark.parametrize(
    "ref",
    [
        "ghcr.io/conveyor-org/conveyor:12-1a2b3c4",  # no digest
        f"ghcr.io/conveyor-org/conveyor@{DIGEST}",  # no tag
        f"ghcr.io/conveyor-org/conveyor:latest@{DIGEST}",  # tag is not <version>-<sha7>
        f"ghcr.io/conveyor-org/conveyor:12-1a2b3c@{DIGEST}",  # sha too short
        f"ghcr.io/conveyor-org/other:12-1a2b3c4@{DIGEST}",  # not the conveyor image
        f"conveyor:12-1a2b3c4@{DIGEST}",  # no registry/owner
        f"ghcr.io/Conveyor-Org/conveyor:12-1a2b3c4@{DIGEST}",  # image names are lower case
        "ghcr.io/conveyor-org/conveyor:12-1a2b3c4@sha256:abc",  # digest too short
        "",
    ],
)
def test_malformed_image_reference_is_refused_with_one_sentence(ref: str) -> None:
    with pytest.raises(ConveyorError) as caught:
        parse_image(ref)
    message = str(caught.value)
    assert message.startswith(f"--image = {ref!r} is not a pinned image reference")
    assert message.count(". ") == 0 and message.endswith(".")


def test_release_file_round_trips_and_renders_with_kustomize(tmp_path: Path) -> None:
    settings = load_settings(ROOT / "params.yaml")
    pinned = release.Release(image=parse_image(GOOD), gate_report="https://ci.example/runs/7")
    text = release.render(pinned, mlflow_ui="https://mlflow.example.com/", model_name=settings.model.name)
    assert release.parse(text, "test") == pinned
    assert release.render(release.parse(text, "test"), mlflow_ui="https://mlflow.example.com/",
                          model_name=settings.model.name) == text  # fmt: skip
    patch = yaml.safe_load(yaml.safe_load(text)["patches"][0]["patch"])
    annotations = patch["metadata"]["annotations"]
    assert annotations[release.MODEL_VERSION] == "12"
    assert annotations["link.argocd.argoproj.io/gate-report"] == "https://ci.example/runs/7"
    assert annotations["link.argocd.argoproj.io/mlflow-model-version"] == (
        f"https://mlflow.example.com/#/models/{settings.model.name}/versions/12"
    )


def test_a_gate_report_that_is_no_url_gets_no_link() -> None:
    pinned = release.Release(image=parse_image(GOOD), gate_report="reports/gate.md")
    text = release.render(pinned, mlflow_ui="https://mlflow.example.com", model_name="m")
    assert "link.argocd.argoproj.io/gate-report" not in text
    assert release.parse(text, "test").gate_report == "reports/gate.md"


@pytest.mark.parametrize("text", ["not: [a, release", "images: []\n", "kind: Component\n"])
def test_a_file_not_written_by_deploy_is_refused(text: str) -> None:
    with pytest.raises(ConveyorError, match="is not a release file written by `conveyor deploy`"):
        release.parse(text, "k8s/overlays/staging/release/kustomization.yaml")


def test_deploy_commit_message_follows_the_contract() -> None:
    pinned = release.Release(image=parse_image(GOOD), gate_report="https://ci.example/runs/7")
    message = history.message("staging", pinned)
    subject = message.partition("\n\n")[0]
    assert subject == "deploy(staging): model v12 ghcr.io/conveyor-org/conveyor:12-1a2b3c4"
    assert history.SUBJECT.match(subject)["env"] == "staging"
    commit = Commit(sha="0" * 40, date="", subject=subject, body=message)
    assert commit.trailers == {
        "Model-Version": "12",
        "Image-Digest": DIGEST,
        "Gate-Report": "https://ci.example/runs/7",
    }
    assert commit.deploys("staging") and not commit.deploys("production")


def test_git_itself_reads_the_trailers(tmp_path: Path) -> None:
    """The trailers are real git trailers, not look-alikes: `git interpret-trailers` parses them."""
    pinned = release.Release(image=parse_image(GOOD), gate_report="https://ci.example/runs/7")
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=history.message("production", pinned),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert parsed.splitlines() == [
        "Model-Version: 12",
        f"Image-Digest: {DIGEST}",
        "Gate-Report: https://ci.example/runs/7",
    ]


def _commit(sha: str, subject: str, reverts: tuple[str, ...] = ()) -> Commit:
    body = subject + "\n\n" + "\n".join(f"This reverts commit {r}." for r in reverts)
    return Commit(sha=sha, date="", subject=subject, body=body)


def test_standing_takes_reverted_commits_off_the_stack() -> None:
    a, b, c, d = (ch * 40 for ch in "abcd")
    commits = [
        _commit(a, "init"),
        _commit(b, "deploy(staging): model v1 x"),
        _commit(c, "deploy(staging): model v2 x"),
        _commit(d, "Revert ...", reverts=(c,)),
    ]
    assert [x.sha for x in history.standing(commits)] == [a, b]


def test_a_revert_of_a_revert_stays_a_change_of_its_own() -> None:
    a, b, r, rr = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
    commits = [
        _commit(a, "init"),
        _commit(b, "deploy(staging): model v1 x"),
        _commit(r, 'Revert "deploy(staging): model v1 x"', reverts=(b,)),
        _commit(rr, 'Revert "Revert ..."', reverts=(r,)),
    ]
    assert [x.sha for x in history.standing(commits)] == [a, rr]


def test_rollback_message_names_every_reverted_commit_and_the_restored_release() -> None:
    undone = [_commit("b" * 40, "deploy(staging): model v2 x"), _commit("c" * 40, "deploy(staging): model v3 x")]
    restored = release.Release(image=parse_image(GOOD), gate_report="g")
    message = history.revert_message("staging", undone, restored, "canary\naborted")
    assert message.startswith("Revert 2 deploys of staging: back to model v12\n")
    assert history.REVERTS.findall(message) == ["b" * 40, "c" * 40]
    assert "Rollback-Reason: canary aborted\n" in message
    single = history.revert_message("staging", undone[:1], restored, None)
    assert single.startswith('Revert "deploy(staging): model v2 x"\n\nThis reverts commit ' + "b" * 40)
    assert "Rollback-Reason" not in single

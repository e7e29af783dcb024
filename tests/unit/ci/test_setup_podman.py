"""scripts/ci/setup-podman.sh --dry-run: which distribution, release and archive the base image would come from.

GitHub's ubuntu-latest runners carry no Debian archive in apt's sources; the script used to stop there. It now
debootstraps the runner's own Ubuntu release from its own archive, and Debian bookworm on Debian. A fake
os-release and a fake `apt-get indextargets` stand for the machine; --dry-run changes nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "ci" / "setup-podman.sh"
UBUNTU_ARCHIVE = "http://archive.ubuntu.invalid/ubuntu"
DEBIAN_ARCHIVE = "http://debian.invalid/debian"
OS_RELEASES = {
    "ubuntu": 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n',
    "debian": 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
    "fedora": 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n',
}
INDEX_TARGETS = {  # what `apt-get indextargets --format '$(SITE) $(RELEASE)'` prints on each
    "ubuntu": [f"{UBUNTU_ARCHIVE} noble", f"{UBUNTU_ARCHIVE} noble-updates", f"{UBUNTU_ARCHIVE} noble-security"],
    "debian": [f"{DEBIAN_ARCHIVE} bookworm", f"{DEBIAN_ARCHIVE} bookworm-updates"],
    "fedora": [],
}


def dry_run(tmp_path: Path, system: str, **env: str) -> subprocess.CompletedProcess[str]:
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES[system])
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    apt_get = fake / "apt-get"
    lines = "\n".join(INDEX_TARGETS[system])
    apt_get.write_text(f'#!/bin/sh\n[ "$1" = indextargets ] || exit 3\ncat <<"EOF"\n{lines}\nEOF\n')
    apt_get.chmod(0o755)
    environment = os.environ | {
        "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
        "CONVEYOR_OS_RELEASE": str(os_release),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=environment | env, check=False
    )


def test_an_ubuntu_runner_debootstraps_its_own_release_from_its_own_archive(tmp_path: Path) -> None:
    done = dry_run(tmp_path, "ubuntu")
    assert done.returncode == 0, done.stderr
    assert "distribution: ubuntu noble" in done.stdout
    assert f"from ubuntu noble (main,universe) at {UBUNTU_ARCHIVE}" in done.stdout
    assert "no Debian bookworm archive" not in done.stdout + done.stderr


def test_a_debian_machine_keeps_bookworm(tmp_path: Path) -> None:
    done = dry_run(tmp_path, "debian")
    assert done.returncode == 0, done.stderr
    assert f"from debian bookworm (main) at {DEBIAN_ARCHIVE}" in done.stdout
    assert "localhost/debian-bookworm:base" in done.stdout


def test_a_mirror_can_be_named_when_apt_has_none(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    INDEX_TARGETS["bare"] = []
    OS_RELEASES["bare"] = OS_RELEASES["ubuntu"]
    try:
        missing = dry_run(tmp_path, "bare")
        assert "no ubuntu noble archive in apt sources, set BASE_MIRROR" in missing.stdout
        named = dry_run(tmp_path / "x", "bare", BASE_MIRROR="http://mirror.invalid/ubuntu")
        assert "at http://mirror.invalid/ubuntu" in named.stdout
    finally:
        del INDEX_TARGETS["bare"], OS_RELEASES["bare"]


@pytest.mark.parametrize("argument", ["--really", "extra"])
def test_unknown_arguments_are_refused(tmp_path: Path, argument: str) -> None:
    done = subprocess.run(["bash", str(SCRIPT), argument], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "usage" in done.stderr


def test_another_distribution_is_refused_in_one_sentence(tmp_path: Path) -> None:
    done = dry_run(tmp_path, "fedora")
    assert done.returncode == 1
    assert "says fedora, neither Debian nor Ubuntu" in done.stderr

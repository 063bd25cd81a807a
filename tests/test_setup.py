"""The set-up of the system Chromium (tools/browser.sh, run by tools/test.sh) on fake machines.

Each run gets a PATH of its own: symlinks to the few basic tools the script needs (never a
Chromium), plus fakes written here for ``id``, ``sudo``, ``apt-get``, ``apt-cache`` and
``chromium``. Nothing is installed: the fake apt-get logs its arguments and, on ``install``,
copies a fake chromium into the same PATH, as the Debian package would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from site_check import toc_pages  # noqa: E402

SCRIPT = ROOT / "tools" / "browser.sh"
BASICS = ("head", "env", "cp")  # what tools/browser.sh and the fakes call, besides the fakes
SH = shutil.which("sh")
BASH = shutil.which("bash")
FAKE_CHROMIUM = 'echo "Chromium 123.0.4567.89 fake"\n'


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!{SH}\n{body}")
    path.chmod(0o755)
    return path


class FakeMachine:
    """A bin folder to be the whole PATH, and the log of every apt-get / sudo call."""

    def __init__(self, root: Path, *, uid: int, sudo: str | None, apt: bool = True, apt_fails: bool = False):
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "calls.log"
        self.log.touch()
        for name in BASICS:
            (self.bin / name).symlink_to(shutil.which(name))
        write_script(self.bin / "id", f'[ "$1" = -u ] && echo {uid}\n')
        if sudo == "works":  # password-less: runs the command
            write_script(
                self.bin / "sudo", f'echo "sudo $*" >> {self.log}\n[ "$*" = "-n true" ] && exit 0\nexec "$@"\n'
            )
        elif sudo == "asks":  # sudo -n fails as it does when a password is needed
            write_script(
                self.bin / "sudo", f'echo "sudo $*" >> {self.log}\necho "sudo: a password is required" >&2\nexit 1\n'
            )
        if apt:
            package = write_script(root / "chromium", FAKE_CHROMIUM)  # what the package puts on PATH
            install = "exit 100" if apt_fails else f"cp {package} {self.bin}/chromium"
            write_script(
                self.bin / "apt-get",
                f'echo "apt-get $*" >> {self.log}\ncase " $* " in *" install "*) {install} ;; esac\n',
            )
            write_script(self.bin / "apt-cache", "exit 0\n")

    def add_chromium(self, name: str = "chromium") -> Path:
        return write_script(self.bin / name, FAKE_CHROMIUM)

    def run(self, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [BASH, str(SCRIPT)], env={"PATH": str(self.bin), **env}, capture_output=True, text=True, timeout=60
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


def assert_skip_reported(result: subprocess.CompletedProcess, why: str) -> None:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected one line saying why the check cannot run, got {result.stdout!r}"
    assert "browser check of the site did not run" in lines[0] and why in lines[0]
    assert "apt-get install chromium" in lines[0] and "CHROMIUM=" in lines[0]  # how to enable it


def test_the_fake_path_holds_no_real_chromium(tmp_path):
    machine = FakeMachine(tmp_path, uid=1000, sudo=None)
    names = {path.name for path in machine.bin.iterdir()}
    assert not {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} & names
    assert all(shutil.which(name) for name in BASICS)


@pytest.mark.parametrize("name", ["chromium", "chromium-browser", "google-chrome"])
def test_a_chromium_on_path_is_found_and_nothing_installed(tmp_path, name):
    machine = FakeMachine(tmp_path, uid=0, sudo="works")
    browser = machine.add_chromium(name)
    result = machine.run()
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # nothing to skip
    assert f"browser: {browser} (Chromium 123.0.4567.89 fake)" in result.stderr
    assert "installing" not in result.stderr
    assert machine.calls() == []  # neither apt-get nor sudo ran


def test_chromium_env_var_names_a_browser_off_path(tmp_path):
    machine = FakeMachine(tmp_path, uid=1000, sudo=None)
    elsewhere = tmp_path / "opt"
    elsewhere.mkdir()
    browser = write_script(elsewhere / "chrome", 'echo "Google Chrome 130.0 fake"\n')
    result = machine.run(CHROMIUM=str(browser))
    assert result.returncode == 0 and result.stdout == ""
    assert f"browser: {browser} (Google Chrome 130.0 fake)" in result.stderr
    assert machine.calls() == []


@pytest.mark.parametrize("sudo", [None, "asks"], ids=["no-sudo", "sudo-asks-a-password"])
def test_no_root_and_no_passwordless_sudo_skips_with_the_reason(tmp_path, sudo):
    machine = FakeMachine(tmp_path, uid=1000, sudo=sudo)
    result = machine.run()
    assert_skip_reported(result, "needs root")
    assert not any(call.startswith("apt-get") for call in machine.calls())
    assert not (machine.bin / "chromium").exists()


def test_no_apt_get_skips_with_the_reason(tmp_path):
    machine = FakeMachine(tmp_path, uid=0, sudo=None, apt=False)
    assert_skip_reported(machine.run(), "no apt-get")


def test_apt_without_a_chromium_package_skips_with_the_reason(tmp_path):
    machine = FakeMachine(tmp_path, uid=0, sudo=None)
    write_script(machine.bin / "apt-cache", 'echo "E: No packages found" >&2\nexit 100\n')
    result = machine.run()
    assert_skip_reported(result, "apt has no package chromium")
    assert machine.calls() == ["apt-get update -qq"]  # looked, installed nothing


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_missing_browser_fails_loudly(tmp_path, ci):
    machine = FakeMachine(tmp_path, uid=1000, sudo="asks")
    result = machine.run(CI=ci)
    assert result.returncode != 0
    assert result.stdout == ""  # no reason handed to the tests: nothing may skip
    assert "ERROR" in result.stderr and "needs root" in result.stderr


def test_root_installs_chromium_once_with_one_line_saying_so(tmp_path):
    machine = FakeMachine(tmp_path, uid=0, sudo=None)
    first = machine.run()
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    said = [line for line in first.stderr.splitlines() if "installing" in line]
    assert said == [
        "tools/browser.sh: no Chromium found: installing the Debian package chromium with apt-get (about a minute, once)"
    ]
    assert machine.calls() == [
        "apt-get update -qq",
        "apt-get install -y -qq chromium",
    ]
    assert f"browser: {machine.bin / 'chromium'} (Chromium 123.0.4567.89 fake)" in first.stderr
    second = machine.run()  # the next run finds it and installs nothing more
    assert second.returncode == 0 and second.stdout == "" and "installing" not in second.stderr
    assert len(machine.calls()) == 2


def test_passwordless_sudo_installs_through_sudo(tmp_path):
    machine = FakeMachine(tmp_path, uid=1000, sudo="works")
    result = machine.run()
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert "with sudo apt-get" in result.stderr
    assert machine.calls() == [
        "sudo -n true",
        "sudo apt-get update -qq",
        "apt-get update -qq",
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
        "apt-get install -y -qq chromium",
    ]


def test_a_failed_install_fails_instead_of_skipping(tmp_path):
    machine = FakeMachine(tmp_path, uid=0, sudo=None, apt_fails=True)
    result = machine.run()
    assert result.returncode != 0
    assert result.stdout == ""


# ------------------------------------------------------------------------- the skip in pytest


def run_browser_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The browser tests of tests/test_site.py, with no Chromium reachable and a stand-in site."""
    site = tmp_path / "html"
    site.mkdir(parents=True)
    (site / "index.html").write_text("<html></html>")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    base = {k: v for k, v in os.environ.items() if k not in {"CHROMIUM", "CI", "SITE_CHECK_SKIP"}}
    browser_tests = ["tests/test_site.py", "-k", "real_browser or search_page", "-p", "no:cacheprovider"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *browser_tests],
        cwd=ROOT,
        env={**base, "PATH": str(empty), "BOOK_HTML": str(site), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_site_browser_tests_skip_only_when_the_setup_said_so(tmp_path):
    reason = "the browser check of the site did not run: because a test said so"
    skipped = run_browser_test(tmp_path, SITE_CHECK_SKIP=reason)
    assert skipped.returncode == 0, skipped.stdout[-3000:]
    summary = [line for line in skipped.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(summary) == 1 and reason in summary[0], skipped.stdout[-3000:]  # one line for all
    assert f"SKIPPED [{len(toc_pages()) + 1}]" in summary[0]  # every page, and the search

    for env in ({}, {"SITE_CHECK_SKIP": reason, "CI": "true"}):  # setup said nothing / CI: fail
        failed = run_browser_test(tmp_path / str(len(env)), **env)
        assert failed.returncode == 1, failed.stdout[-3000:]
        assert "no Chromium found for the browser check" in failed.stdout
        assert "skipped" not in failed.stdout.splitlines()[-1]

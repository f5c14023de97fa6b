"""Headless Chromium for the tests that look at a page as a person would (the HTML
report, the docs site): Debian's chromium, which .ci/run installs."""

import os
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The browser's path; skips the test without one, fails it where CI requires one."""
    if CHROMIUM is None:
        if os.environ.get("RANKBIAS_REQUIRE_CHROMIUM"):
            pytest.fail("RANKBIAS_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("needs Debian's chromium (installed by .ci/run)")
    return CHROMIUM


def dump_dom(uri: str, profile) -> str:
    """The page's DOM after its scripts ran (5 s of virtual time), from a fresh profile."""
    args = [require_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--virtual-time-budget=5000", "--dump-dom", uri]
    return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout

"""Fixtures of flag-service's provider end-to-end suite.

Every server is a real flag-service process (FLAG_SERVICE_BIN) on free loopback ports with a
temp data dir and temp flag files; providers are the unmodified PyPI packages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from openfeature import api

import gherkin_exclusions
from harness import flagsets, report, testbed
from harness.server import FlagService, binary

pytest_plugins = ["gherkin_steps"]

# Flag files of the shared provider server, in priority order (later files win a key).
MAIN = "flags/testing-flags.json"
TARGETED = "flags/targeted.json"
DISABLED = "flags/disabled-flags.json"
SELECTOR = "flags/selector-flags.json"
CHANGING = "flags/changing.json"
PROVIDER_FILES = [MAIN, TARGETED, DISABLED, SELECTOR, CHANGING]


def pytest_sessionstart(session):
    # Fail at once, with the reason, rather than once per test.
    binary()
    testbed.root()


def pytest_configure(config):
    # Register the testbed's tags (pytest-bdd turns them into markers) so pytest does not warn.
    import re

    tags = set()
    for name in gherkin_exclusions.FEATURES:
        tags.update(re.findall(r"@([\w.-]+)", (testbed.root() / "gherkin" / name).read_text(encoding="utf-8")))
    for tag in sorted(tags):
        config.addinivalue_line("markers", f"{tag}: flagd-testbed tag")


def pytest_collection_modifyitems(config, items):
    """Testbed scenarios run in a mode only when tagged with it; excluded tags are skipped with
    their reason and known failures are strict xfails (gherkin_exclusions.py)."""
    selected, deselected = [], []
    for item in items:
        if "gherkin_mode" not in getattr(item, "fixturenames", ()) or not hasattr(item, "callspec"):
            selected.append(item)
            continue
        mode = item.callspec.params["gherkin_mode"]
        tags = {marker.name for marker in item.iter_markers()}
        if mode not in tags:
            deselected.append(item)
            continue
        selected.append(item)
        reasons = [gherkin_exclusions.EXCLUDED_TAGS[t] for t in sorted(tags) if t in gherkin_exclusions.EXCLUDED_TAGS]
        reasons += [why for (m, t), why in gherkin_exclusions.EXCLUDED_IN_MODE.items() if m == mode and t in tags]
        if reasons:
            item.add_marker(pytest.mark.skip(reason=f"excluded: {reasons[0]}"))
            continue
        # pytest-bdd documents each scenario test as "<feature path>: <scenario name>".
        feature, _, name = (item.function.__doc__ or "").partition(": ")
        if name:
            key = (Path(feature).name, name)
            if key in gherkin_exclusions.EXPECTED_FAILURES:
                item.add_marker(pytest.mark.xfail(strict=True, reason=gherkin_exclusions.EXPECTED_FAILURES[key]))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_terminal_summary(terminalreporter):
    lines = report.summary_lines()
    if lines:
        terminalreporter.section("flag-service e2e measurements")
        for line in lines:
            terminalreporter.write_line(line)
    report.write()


@pytest.fixture(autouse=True)
def _openfeature_reset():
    """Each test registers its own providers; shut them all down afterwards."""
    yield
    api.shutdown()


@pytest.fixture
def start_flag_service(tmp_path_factory):
    """Starts a flag-service for `files` ({relative path: flag document | Path to copy}, in
    priority order); stopped when the test ends."""
    started: list[FlagService] = []

    def start(files: dict[str, dict | Path], name: str = "flag-service") -> FlagService:
        workdir = tmp_path_factory.mktemp(name)
        for relative, source in files.items():
            target = workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, Path):
                shutil.copyfile(source, target)
            else:
                target.write_text(json.dumps(source, indent=2), encoding="utf-8")
        service = FlagService(workdir, list(files), name=name)
        started.append(service)
        service.start()
        return service

    yield start
    for service in started:
        service.close()


class ProviderServer(FlagService):
    """The shared server of the provider tests, with a helper that flips `changing-flag`."""

    changing_default = "foo"

    def flip_changing_flag(self) -> tuple[str, float]:
        """Rewrites flags/changing.json with the other default variant of `changing-flag`;
        returns the new value and the monotonic time of the rename."""
        self.changing_default = "bar" if self.changing_default == "foo" else "foo"
        renamed_at = self.write_flags(CHANGING, flagsets.changing(self.changing_default))
        return self.changing_default, renamed_at


@pytest.fixture(scope="module")
def provider_server(tmp_path_factory):
    """One flag-service per test module: copies of testbed files plus files written here."""
    workdir = tmp_path_factory.mktemp("provider-server")
    flags = testbed.root() / "flags"
    (workdir / "flags").mkdir()
    for relative in (MAIN, DISABLED, SELECTOR):
        shutil.copyfile(flags / Path(relative).name, workdir / relative)
    (workdir / TARGETED).write_text(json.dumps(flagsets.TARGETED, indent=2), encoding="utf-8")
    (workdir / CHANGING).write_text(json.dumps(flagsets.changing("foo"), indent=2), encoding="utf-8")
    service = ProviderServer(workdir, PROVIDER_FILES, name="provider-server")
    service.start()
    yield service
    service.close()

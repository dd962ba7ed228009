"""The flagd-testbed's provider-level gherkin scenarios (read from the testbed directory,
which stays untouched) against flag-service, in the Python provider's RPC and in-process modes.
Steps: gherkin_steps.py. What runs and what does not, and why: gherkin_exclusions.py."""

import pytest
from pytest_bdd import scenarios

from gherkin_exclusions import FEATURES, MODES
from harness import testbed


@pytest.fixture(params=MODES, autouse=True)
def gherkin_mode(request):
    return request.param


scenarios(*(str(testbed.root() / "gherkin" / name) for name in FEATURES))

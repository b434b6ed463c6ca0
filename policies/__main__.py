"""tkg-gpu policy pack: run with ``pulumi preview --policy-pack policies``."""

import pathlib
import sys

# The rules share the project's components and message catalogs, which live in the project root.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies import pack  # noqa: E402

PolicyPack(
    name="tkg-gpu",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=pack.POLICIES,
)

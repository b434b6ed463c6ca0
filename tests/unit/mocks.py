"""Pulumi mocks shared by the unit tests: every resource echoes its inputs, plus the outputs its real provider adds."""

from __future__ import annotations

from typing import Any

import pulumi


def _release_status(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": {
            "name": inputs["name"],
            "namespace": inputs["namespace"],
            "status": "deployed",
            "version": inputs["version"],
            "chart": "gpu-operator",
        }
    }


# Outputs that each resource type adds to its inputs, by the end of its type token.
_ADDED_OUTPUTS = {
    "tkggpu:PassthroughDevice": lambda inputs: {"passthru_enabled": True, "passthru_active": True, "reboot_required": False},
    "tkggpu:TanzuCluster": lambda inputs: {"status": "running", "kubeconfig": "apiVersion: v1\nkind: Config\n"},
    "kubernetes:helm.sh/v3:Release": _release_status,
    # The API server's uid, and the name Pulumi gives a Pod declared without one.
    "kubernetes:core/v1:Pod": lambda inputs: {
        "metadata": {"name": "cuda-vector-add-1a2b3c4d", **inputs["metadata"], "uid": "uid-1"}
    },
    "tkggpu:CudaValidation": lambda inputs: {
        "result": "Test PASSED", "node": "gpu-wc-01-md-0-a", "allocatable_gpus": 2, "log_tail": "Test PASSED\nDone",
    },
}


class RecordingMocks(pulumi.runtime.Mocks):
    """Record every declared resource's type and inputs by resource name."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        for suffix, added in _ADDED_OUTPUTS.items():
            if args.typ.endswith(suffix):
                outputs.update(added(args.inputs))
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs}

        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

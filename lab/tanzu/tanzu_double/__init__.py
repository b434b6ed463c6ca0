"""Test double of the Tanzu CLI `cluster` plugin (TKG 2.x, tanzu-framework v0.29.0).

The double keeps its clusters in the directory named by TANZU_DOUBLE_STATE_DIR and creates
the cluster VMs in a vCenter (normally the lab's simulator) with pyVmomi. Its flags, output
streams, JSON keys and exit codes follow the real plugin. See README.md next to this package.
"""

PLUGIN_VERSION = "v0.29.0"
CLI_CORE_VERSION = "v0.29.0"

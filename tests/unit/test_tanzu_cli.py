import os
import stat
import textwrap

import pytest

from components import tanzu_cli


def test_config_file_private_and_removed():
    with tanzu_cli.private_config_file("VSPHERE_PASSWORD: <encoded:eA==>\n") as path:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        directory_mode = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        assert mode == 0o600
        assert directory_mode == 0o700
        assert open(path).read() == "VSPHERE_PASSWORD: <encoded:eA==>\n"

    assert not os.path.exists(path)
    assert not os.path.exists(os.path.dirname(path))


def test_config_file_removed_on_error():
    with pytest.raises(RuntimeError, match="boom"), tanzu_cli.private_config_file("x") as path:
        raise RuntimeError("boom")

    assert not os.path.exists(path)


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """Put a `tanzu` script on PATH that prints a secret to stderr and exits 1."""
    script = tmp_path / "tanzu"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "Validating configuration..." >&2
        echo "Error: login failed with password hunter2-secret" >&2
        exit 1
    """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    return "tanzu"


def test_failure_names_command_and_masks_secret(fake_cli):
    with pytest.raises(tanzu_cli.TanzuError) as caught:
        tanzu_cli.run(fake_cli, ["cluster", "create", "c1"], timeout=30, secrets=["hunter2-secret"])

    message = str(caught.value)
    assert "`tanzu cluster create c1` failed with exit code 1" in message
    assert "hunter2-secret" not in message
    assert "login failed with password ******" in message


def test_missing_cli_named():
    with pytest.raises(tanzu_cli.TanzuError, match="tanzu CLI 'no-such-tanzu' not found on PATH"):
        tanzu_cli.run("no-such-tanzu", ["version"], timeout=5)


def test_admin_kubeconfig_read_from_a_removed_private_file(tmp_path, monkeypatch):
    """`kubeconfig get --admin` exports into a private directory; the file is read and then removed."""
    record = tmp_path / "record"
    script = tmp_path / "tanzu"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        while [ "$1" != "--export-file" ]; do shift; done
        stat -c '%a' "$(dirname "$2")" > {record}
        echo "$2" >> {record}
        printf 'apiVersion: v1\\nkind: Config\\n' > "$2"
        echo "Credentials of cluster 'wc' have been saved" >&2
    """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    content = tanzu_cli.admin_kubeconfig("tanzu", "wc", "default")

    directory_mode, path = record.read_text().split()
    assert content == "apiVersion: v1\nkind: Config\n"
    assert directory_mode == "700"
    assert not os.path.exists(path)

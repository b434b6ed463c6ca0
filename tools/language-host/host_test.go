package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func TestSemverFromPEP440(t *testing.T) {
	cases := map[string]string{
		"1":                   "1.0.0",
		"1.2":                 "1.2.0",
		"4.34.2":              "4.34.2",
		"1.2.3.4":             "1.2.3.4",
		"1.2.3a4":             "1.2.3-alpha.4",
		"1.2.3b4":             "1.2.3-beta.4",
		"1.2.3rc4":            "1.2.3-rc.4",
		"1.2.3.post4":         "1.2.3+post4",
		"1.2.3.dev5":          "1.2.3+dev5",
		"1.2.3.post4.dev5":    "1.2.3+post4dev5",
		"3.31.0a1605189729":   "3.31.0-alpha.1605189729",
		"1.2.3rc1.post2.dev3": "1.2.3-rc.1+post2dev3",
	}
	for input, expected := range cases {
		got, err := semverFromPEP440(input)
		if err != nil {
			t.Errorf("semverFromPEP440(%q) returned error %v, expected %q", input, err, expected)
			continue
		}
		if got != expected {
			t.Errorf("semverFromPEP440(%q) = %q, expected %q", input, got, expected)
		}
	}
}

func TestSemverFromPEP440Rejects(t *testing.T) {
	for _, input := range []string{"", "1!2.0", "1.0+local", "abc", "1.0.x"} {
		if got, err := semverFromPEP440(input); err == nil {
			t.Errorf("semverFromPEP440(%q) = %q, expected an error", input, got)
		}
	}
}

func TestParsePythonOptionsVirtualenv(t *testing.T) {
	relative, err := parsePythonOptions("/project", map[string]any{"virtualenv": "venv"})
	if err != nil {
		t.Fatal(err)
	}
	if relative.virtualenvPath != "/project/venv" {
		t.Errorf("relative virtualenv resolved to %q, expected /project/venv", relative.virtualenvPath)
	}

	absolute, err := parsePythonOptions("/project", map[string]any{"virtualenv": "/opt/venv"})
	if err != nil {
		t.Fatal(err)
	}
	if absolute.virtualenvPath != "/opt/venv" {
		t.Errorf("absolute virtualenv resolved to %q, expected /opt/venv", absolute.virtualenvPath)
	}

	ambient, err := parsePythonOptions("/project", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if ambient.virtualenvPath != "" {
		t.Errorf("no virtualenv option resolved to %q, expected empty", ambient.virtualenvPath)
	}
}

func TestParsePythonOptionsRejectsUnsupported(t *testing.T) {
	cases := []map[string]any{
		{"virtualenv": 3},
		{"toolchain": "uv"},
		{"toolchain": "poetry"},
		{"typechecker": "mypy"},
	}
	for _, options := range cases {
		if _, err := parsePythonOptions("/project", options); err == nil {
			t.Errorf("parsePythonOptions(%v) succeeded, expected an error", options)
		}
	}

	if _, err := parsePythonOptions("/project", map[string]any{"toolchain": "pip"}); err != nil {
		t.Errorf("toolchain pip rejected: %v", err)
	}
}

func TestActivateVirtualenv(t *testing.T) {
	opts := pythonOptions{virtualenv: "venv", virtualenvPath: "/p/venv"}
	env := activateVirtualenv([]string{"PATH=/usr/bin", "PYTHONHOME=/x", "VIRTUAL_ENV=/old", "HOME=/root"}, opts)

	if !slices.Contains(env, "PATH=/p/venv/bin:/usr/bin") {
		t.Errorf("PATH does not start with the venv bin directory: %v", env)
	}
	if !slices.Contains(env, "VIRTUAL_ENV=/p/venv") {
		t.Errorf("VIRTUAL_ENV is not the venv: %v", env)
	}
	if slices.Contains(env, "VIRTUAL_ENV=/old") || slices.Contains(env, "PYTHONHOME=/x") {
		t.Errorf("old VIRTUAL_ENV or PYTHONHOME kept: %v", env)
	}
	if !slices.Contains(env, "HOME=/root") {
		t.Errorf("unrelated variable dropped: %v", env)
	}
}

func TestRunResponseExitCodes(t *testing.T) {
	if response := runResponse(nil); response.GetError() != "" || response.GetBail() {
		t.Errorf("success mapped to %v", response)
	}

	bail := runResponse(exitError(t, userActionableExitCode))
	if !bail.GetBail() || bail.GetError() != "" {
		t.Errorf("exit code 32 mapped to %v, expected bail without error", bail)
	}

	failed := runResponse(exitError(t, 1))
	if failed.GetBail() || failed.GetError() != "program exited with non-zero exit code: 1" {
		t.Errorf("exit code 1 mapped to %v", failed)
	}
}

func exitError(t *testing.T, code int) error {
	t.Helper()
	err := exec.Command("sh", "-c", "exit "+strconv.Itoa(code)).Run()
	if err == nil {
		t.Fatalf("sh exited 0, expected %d", code)
	}

	return err
}

func TestRequiredPluginsFromPluginJSON(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	distributions := []pythonDistribution{
		{Name: "pulumi-command", Version: "1.2.1",
			PluginJSON: write("command.json", `{"resource": true, "name": "command", "version": "1.2.1"}`)},
		{Name: "pulumi-kubernetes", Version: "4.34.2",
			PluginJSON: write("kubernetes.json", `{"resource": true, "name": "kubernetes"}`)},
		{Name: "pulumi-policy", Version: "1.21.0", PluginJSON: write("policy.json", `{"resource": false}`)},
		{Name: "pulumi-esc-sdk", Version: "0.12.0"},
		{Name: "pulumi-random", Version: "4.18.0"},
		{Name: "pulumi-nothing", Version: "1.0.0", PluginJSON: write("nothing.json", `{"resource": false}`)},
		{Name: "pulumi-odd", Version: "1.0+local"},
	}

	plugins, err := requiredPlugins(distributions)
	if err != nil {
		t.Fatal(err)
	}

	expected := []requiredPlugin{
		{name: "command", version: "v1.2.1"},
		{name: "kubernetes", version: "v4.34.2"},
		{name: "random", version: "v4.18.0"},
	}
	if !slices.Equal(plugins, expected) {
		t.Errorf("requiredPlugins = %+v, expected %+v", plugins, expected)
	}
}

func TestRequiredPluginsRejectsInvalidJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pulumi-plugin.json")
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := requiredPlugins([]pythonDistribution{{Name: "pulumi-broken", Version: "1.0.0", PluginJSON: path}})
	if err == nil {
		t.Error("invalid pulumi-plugin.json accepted")
	}
}

// TestListDistributionsProjectVirtualenv runs the listing script in the project's virtualenv, which has
// pulumi_policy (with a pulumi-plugin.json) installed.
func TestListDistributionsProjectVirtualenv(t *testing.T) {
	venv, err := filepath.Abs("../../.venv")
	if err != nil {
		t.Fatal(err)
	}
	if !isVirtualenv(venv) {
		t.Skipf("no virtualenv at %s", venv)
	}

	distributions, err := listDistributions(context.Background(), pythonOptions{virtualenv: venv, virtualenvPath: venv})
	if err != nil {
		t.Fatal(err)
	}

	index := slices.IndexFunc(distributions, func(d pythonDistribution) bool { return d.Name == "pulumi-policy" })
	if index < 0 {
		t.Fatalf("pulumi-policy missing from %+v", distributions)
	}
	if filepath.Base(distributions[index].PluginJSON) != "pulumi-plugin.json" {
		t.Errorf("pulumi-policy has plugin JSON path %q", distributions[index].PluginJSON)
	}
	if slices.ContainsFunc(distributions, func(d pythonDistribution) bool { return d.Name == "pyyaml" }) {
		t.Errorf("listing contains a package that is neither named pulumi-* nor has pulumi-plugin.json")
	}
}

func TestPythonExecutableMissingVirtualenv(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "venv")
	_, err := pythonExecutable(pythonOptions{virtualenv: "venv", virtualenvPath: missing})
	if err == nil {
		t.Fatal("missing virtualenv accepted")
	}
}

func TestProgramConfigEnvironmentEmpty(t *testing.T) {
	env, err := programConfigEnvironment(&pulumirpc.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}

	expected := []string{"PULUMI_CONFIG={}", "PULUMI_CONFIG_SECRET_KEYS=[]"}
	if !slices.Equal(env, expected) {
		t.Errorf("environment for an empty configuration = %v, expected %v", env, expected)
	}
}

func TestProgramConfigEnvironmentValues(t *testing.T) {
	env, err := programConfigEnvironment(&pulumirpc.RunRequest{
		Config:           map[string]string{"proj:token": "value"},
		ConfigSecretKeys: []string{"proj:token"},
	})
	if err != nil {
		t.Fatal(err)
	}

	expected := []string{`PULUMI_CONFIG={"proj:token":"value"}`, `PULUMI_CONFIG_SECRET_KEYS=["proj:token"]`}
	if !slices.Equal(env, expected) {
		t.Errorf("environment = %v, expected %v", env, expected)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// pythonOptions contains the runtime options of Pulumi.yaml or PulumiPolicy.yaml that this host understands.
type pythonOptions struct {
	// virtualenv is the option as written: absolute, or relative to the project or policy pack directory.
	// Empty means the ambient Python on PATH.
	virtualenv string
	// virtualenvPath is virtualenv resolved to an absolute path, or empty.
	virtualenvPath string
}

// parsePythonOptions reads the runtime options. rootDir is the directory of Pulumi.yaml or PulumiPolicy.yaml.
// Options this host cannot honour are rejected, so a project never runs with a silently ignored setting.
func parsePythonOptions(rootDir string, options map[string]any) (pythonOptions, error) {
	var opts pythonOptions

	for key, value := range options {
		switch key {
		case "virtualenv":
			text, ok := value.(string)
			if !ok {
				return opts, fmt.Errorf("invalid runtime option virtualenv: expected a string, got %T", value)
			}
			opts.virtualenv = text
		case "toolchain":
			if value != "pip" {
				return opts, fmt.Errorf(
					"unsupported runtime option toolchain: %v; this language host (%s) supports only pip",
					value, version)
			}
		case "typechecker":
			return opts, fmt.Errorf(
				"unsupported runtime option typechecker: %v; this language host (%s) does not run type checkers",
				value, version)
		default:
			// Options of other hosts (for example `binary` or `buildTarget`) are ignored, as the upstream
			// Python host ignores them.
		}
	}

	if opts.virtualenv != "" {
		opts.virtualenvPath = opts.virtualenv
		if !filepath.IsAbs(opts.virtualenvPath) {
			opts.virtualenvPath = filepath.Join(rootDir, opts.virtualenvPath)
		}
	}

	return opts, nil
}

// isVirtualenv reports whether dir contains bin/python.
func isVirtualenv(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, "bin", "python"))
	return err == nil && !info.IsDir()
}

// missingVirtualenvError explains how to create the configured virtualenv.
func missingVirtualenvError(opts pythonOptions) error {
	problem := "does not exist"
	if _, err := os.Stat(opts.virtualenvPath); err == nil {
		problem = "is not a virtualenv (bin/python is missing)"
	}

	return fmt.Errorf(
		"the runtime option virtualenv is %q, but %s %s; create it with `python3 -m venv %s` "+
			"and `%s -m pip install -r requirements.txt`, or run `pulumi install`",
		opts.virtualenv, opts.virtualenvPath, problem,
		opts.virtualenvPath, filepath.Join(opts.virtualenvPath, "bin", "python"))
}

// pythonExecutable returns the interpreter to run: the virtualenv's bin/python, or else PULUMI_PYTHON_CMD,
// python3 or python from PATH.
func pythonExecutable(opts pythonOptions) (string, error) {
	if opts.virtualenvPath != "" {
		if !isVirtualenv(opts.virtualenvPath) {
			return "", missingVirtualenvError(opts)
		}

		return filepath.Join(opts.virtualenvPath, "bin", "python"), nil
	}

	candidates := []string{"python3", "python"}
	if fromEnv := os.Getenv("PULUMI_PYTHON_CMD"); fromEnv != "" {
		candidates = []string{fromEnv}
	}

	for _, name := range candidates {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}

	return "", fmt.Errorf("no Python interpreter found on PATH (tried %s); install Python 3 or set the "+
		"virtualenv runtime option", strings.Join(candidates, ", "))
}

// activateVirtualenv returns environ as a shell would see it after `source <venv>/bin/activate`: VIRTUAL_ENV set,
// the venv's bin directory first on PATH and PYTHONHOME removed. Without a virtualenv it returns environ unchanged.
func activateVirtualenv(environ []string, opts pythonOptions) []string {
	if opts.virtualenvPath == "" {
		return environ
	}

	binDir := filepath.Join(opts.virtualenvPath, "bin")
	result := make([]string, 0, len(environ)+2)
	pathSet := false
	for _, entry := range environ {
		key, value, _ := strings.Cut(entry, "=")
		switch key {
		case "PATH":
			result = append(result, "PATH="+binDir+string(os.PathListSeparator)+value)
			pathSet = true
		case "PYTHONHOME", "VIRTUAL_ENV":
			// Dropped: PYTHONHOME would override the venv's prefix, and VIRTUAL_ENV is set below.
		default:
			result = append(result, entry)
		}
	}

	if !pathSet {
		result = append(result, "PATH="+binDir)
	}

	return append(result, "VIRTUAL_ENV="+opts.virtualenvPath)
}

// pythonCommand builds a command that runs the selected interpreter with args in the activated environment.
// baseEnv is the environment to start from; nil means this process's environment.
func pythonCommand(ctx context.Context, opts pythonOptions, baseEnv []string, args ...string) (*exec.Cmd, error) {
	python, err := pythonExecutable(opts)
	if err != nil {
		return nil, err
	}

	if baseEnv == nil {
		baseEnv = os.Environ()
	}

	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Env = activateVirtualenv(baseEnv, opts)

	return cmd, nil
}

// locateExecScript finds the pulumi-language-python-exec script. Without an explicit path it looks next to the
// path this binary was started as (a symlink in a bin directory, typically), then next to the resolved binary.
func locateExecScript(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("exec script given with -use-executor not found: %w", err)
		}

		return explicit, nil
	}

	var candidates []string
	if invoked, err := exec.LookPath(os.Args[0]); err == nil {
		if abs, err := filepath.Abs(invoked); err == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(abs), execScriptName))
		}
	}
	if self, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(self), execScriptName))
	}

	for _, candidate := range candidates {
		if info, err := os.Stat(candidate); err == nil && !info.IsDir() {
			return candidate, nil
		}
	}

	if len(candidates) == 0 {
		return "", errors.New("cannot determine the directory of this executable to find " + execScriptName)
	}

	return "", fmt.Errorf("%s not found (looked at %s); install it next to pulumi-language-python",
		execScriptName, strings.Join(candidates, ", "))
}

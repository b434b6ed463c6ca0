package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// analyzerPluginKind is the RunPluginRequest.Kind of policy packs.
const analyzerPluginKind = "analyzer"

// defaultPluginVirtualenv is the virtualenv of a plugin whose PulumiPlugin.yaml sets none. Policy packs have no
// default and may use the ambient Python.
const defaultPluginVirtualenv = "venv"

// RunPlugin runs a Python plugin and streams its output back to the engine.
//
// A policy pack (Kind "analyzer") runs as `python -u -m pulumi.policy <args...> <pack directory>` in the pack
// directory. The pulumi_policy library takes the stack's project, stack name and configuration from environment
// variables, which the engine sends only in a later ConfigureStack call. So the host first serves a policy proxy
// from the Pulumi SDK, and the engine connects to the proxy. Once the proxy has received ConfigureStack, the host
// starts Python with those variables. The proxy then forwards every further call to the pack's own gRPC server.
//
// Any other plugin kind runs as `python <plugin directory> <args...>`, which executes its __main__.py.
func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	ctx := server.Context()
	info := req.GetInfo()
	if info == nil {
		return status.Error(codes.InvalidArgument, "run plugin request has no program info")
	}
	isAnalyzer := req.GetKind() == analyzerPluginKind

	opts, err := parsePythonOptions(info.GetRootDirectory(), info.GetOptions().AsMap())
	if err != nil {
		return err
	}
	if !isAnalyzer && opts.virtualenv == "" {
		opts, err = parsePythonOptions(info.GetRootDirectory(), map[string]any{"virtualenv": defaultPluginVirtualenv})
		if err != nil {
			return err
		}
	}

	var args []string
	if isAnalyzer {
		// pulumi.policy expects the pack directory as its last argument.
		args = append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...)
		args = append(args, info.GetProgramDirectory())
	} else {
		if _, err := os.Stat(filepath.Join(info.GetProgramDirectory(), "__main__.py")); err != nil {
			return fmt.Errorf("plugin directory %s has no __main__.py; this language host runs only "+
				"plugins with a __main__.py: %w", info.GetProgramDirectory(), err)
		}
		args = append([]string{info.GetProgramDirectory()}, req.GetArgs()...)
	}

	runCtx, stopRun := context.WithCancel(h.cancelRuns)
	defer stopRun()
	context.AfterFunc(ctx, stopRun)

	cmd, err := pythonCommand(runCtx, opts, req.GetEnv(), args...)
	if err != nil {
		return err
	}
	interruptOnCancel(cmd)
	if isAnalyzer {
		// Policy packs have always run with the pack directory as working directory.
		cmd.Dir = info.GetProgramDirectory()
	} else {
		cmd.Dir = req.GetPwd()
	}

	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd.Stderr = stderr

	logging.V(5).Infof("running %s plugin: %s %v", req.GetKind(), cmd.Path, args)
	if isAnalyzer {
		err = runPolicyPack(ctx, cmd, stdout)
	} else {
		cmd.Stdout = stdout
		err = cmd.Run()
	}

	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return server.Send(&pulumirpc.RunPluginResponse{
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(exitErr.ExitCode())},
			})
		}

		return fmt.Errorf("running plugin %s failed: %w", info.GetProgramDirectory(), err)
	}

	return closer.Close()
}

// runPolicyPack starts the policy proxy, waits for the stack configuration, then runs cmd behind the proxy
// until it exits. stdout is the stream that the engine reads the plugin's port from.
func runPolicyPack(ctx context.Context, cmd *exec.Cmd, stdout io.Writer) error {
	proxy, packStdout, err := sdk.NewPolicyProxy(ctx, stdout)
	if err != nil {
		return fmt.Errorf("starting the policy proxy failed: %w", err)
	}

	// This prints the proxy's port for the engine and returns once the engine has configured the stack (or
	// has asked for analyzer info without doing so, as `pulumi policy publish` does).
	config, err := proxy.AwaitConfiguration(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the stack configuration of the policy pack failed: %w", err)
	}

	if config != nil {
		env, err := policyPackEnvironment(config)
		if err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, env...)
	}

	cmd.Stdout = packStdout
	if err := cmd.Start(); err != nil {
		return err
	}

	// Attach reads the pack's port from packStdout, forwards the configuration and returns when cmd exits.
	return proxy.Attach(ctx, cmd)
}

// policyPackEnvironment returns the variables from which pulumi_policy configures the Pulumi runtime.
func policyPackEnvironment(config *pulumirpc.AnalyzerStackConfigureRequest) ([]string, error) {
	var env []string
	addVariable := func(name, value string) {
		if value != "" {
			env = append(env, name+"="+value)
		}
	}

	addVariable("PULUMI_ORGANIZATION", config.GetOrganization())
	addVariable("PULUMI_PROJECT", config.GetProject())
	addVariable("PULUMI_STACK", config.GetStack())
	addVariable("PULUMI_DRY_RUN", strconv.FormatBool(config.GetDryRun()))

	if config.GetConfig() != nil {
		configJSON, err := json.Marshal(config.GetConfig())
		if err != nil {
			return nil, fmt.Errorf("encoding the stack configuration for the policy pack failed: %w", err)
		}
		addVariable("PULUMI_CONFIG", string(configJSON))
	}
	if keys := config.GetConfigSecretKeys(); keys != nil {
		keysJSON, err := json.Marshal(keys)
		if err != nil {
			return nil, fmt.Errorf("encoding the secret configuration keys for the policy pack failed: %w", err)
		}
		addVariable("PULUMI_CONFIG_SECRET_KEYS", string(keysJSON))
	}

	return env, nil
}

// InstallDependencies creates the configured virtualenv and installs requirements.txt into it when the
// virtualenv does not exist yet. An existing virtualenv is left untouched, so running `pulumi install` against a
// shared environment never changes it. Without a virtualenv option (policy packs may run on the ambient Python)
// nothing is installed.
func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	info := req.GetInfo()
	if info == nil {
		return status.Error(codes.InvalidArgument, "install dependencies request has no program info")
	}

	options := info.GetOptions().AsMap()
	if _, ok := options["virtualenv"]; !ok && req.GetIsPlugin() {
		options["virtualenv"] = defaultPluginVirtualenv
	}
	opts, err := parsePythonOptions(info.GetRootDirectory(), options)
	if err != nil {
		return err
	}

	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()

	switch {
	case opts.virtualenvPath == "":
		fmt.Fprintln(stdout, "No virtualenv runtime option is set; not installing anything into the ambient Python.")
	case isVirtualenv(opts.virtualenvPath):
		fmt.Fprintf(stdout, "Virtualenv %s exists; not changing it.\n", opts.virtualenvPath)
	default:
		if err := createVirtualenv(server.Context(), opts, info, stdout, stderr); err != nil {
			return err
		}
	}

	return closer.Close()
}

// createVirtualenv creates opts.virtualenvPath with the ambient Python and installs requirements.txt from the
// program or root directory into it. A virtualenv whose installation fails is removed again, so the next run
// does not mistake it for a complete one.
func createVirtualenv(
	ctx context.Context, opts pythonOptions, info *pulumirpc.ProgramInfo, stdout, stderr io.Writer,
) error {
	if _, err := os.Stat(opts.virtualenvPath); err == nil {
		entries, err := os.ReadDir(opts.virtualenvPath)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return missingVirtualenvError(opts)
		}
	}

	python, err := pythonExecutable(pythonOptions{})
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "Creating virtualenv %s\n", opts.virtualenvPath)
	create := exec.CommandContext(ctx, python, "-m", "venv", opts.virtualenvPath)
	create.Stdout, create.Stderr = stdout, stderr
	if err := create.Run(); err != nil {
		return fmt.Errorf("`%s -m venv %s` failed: %w", python, opts.virtualenvPath, err)
	}

	requirements := findRequirements(info)
	if requirements == "" {
		fmt.Fprintln(stdout, "No requirements.txt found; the virtualenv contains no packages.")
		return nil
	}

	install, err := pythonCommand(ctx, opts, nil,
		"-m", "pip", "install", "--disable-pip-version-check", "-r", requirements)
	if err != nil {
		return err
	}
	install.Stdout, install.Stderr = stdout, stderr
	fmt.Fprintf(stdout, "Installing %s\n", requirements)
	if err := install.Run(); err != nil {
		if removeErr := os.RemoveAll(opts.virtualenvPath); removeErr != nil {
			logging.Warningf("removing the incomplete virtualenv %s failed: %v", opts.virtualenvPath, removeErr)
		}

		return fmt.Errorf("installing %s into %s failed: %w", requirements, opts.virtualenvPath, err)
	}

	return nil
}

// findRequirements returns the requirements.txt of the program directory, else of the root directory, or "".
func findRequirements(info *pulumirpc.ProgramInfo) string {
	for _, dir := range []string{info.GetProgramDirectory(), info.GetRootDirectory()} {
		path := filepath.Join(dir, "requirements.txt")
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}

	return ""
}

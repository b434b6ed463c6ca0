package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// userActionableExitCode is the exit code with which the exec script reports that it has already shown the user
// an actionable error message, so the engine should stop without printing another one.
const userActionableExitCode = 32

// interruptGracePeriod is how long a Python process may take to exit after SIGINT before it is killed.
const interruptGracePeriod = 5 * time.Second

// languageHost implements pulumirpc.LanguageRuntimeServer for Python programs and policy packs. RPCs that this
// host does not need (code generation, packing, linking, templates) fall through to the embedded
// UnimplementedLanguageRuntimeServer and return codes.Unimplemented.
type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execScript      string
	tracingEndpoint string

	mu            sync.Mutex
	engineAddress string

	// cancelRuns is cancelled by the Cancel RPC and stops every running program.
	cancelRuns context.Context
	cancel     context.CancelFunc
}

func newLanguageHost(execScript, engineAddress, tracingEndpoint string) *languageHost {
	ctx, cancel := context.WithCancel(context.Background())

	return &languageHost{
		execScript:      execScript,
		tracingEndpoint: tracingEndpoint,
		engineAddress:   engineAddress,
		cancelRuns:      ctx,
		cancel:          cancel,
	}
}

func (h *languageHost) currentEngineAddress() string {
	h.mu.Lock()
	defer h.mu.Unlock()

	return h.engineAddress
}

// Handshake records the engine address. The engine sends it only when it attaches to a host that is already
// running. A host started by the engine receives the address as a command-line argument instead.
func (h *languageHost) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() == "" {
		return nil, status.Error(codes.InvalidArgument, "handshake request has no engine address")
	}

	h.mu.Lock()
	h.engineAddress = req.GetEngineAddress()
	h.mu.Unlock()

	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// GetRequiredPackages reports the resource plugins of the Pulumi packages installed in the program's Python
// environment, read from their pulumi-plugin.json files.
func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	plugins, err := h.requiredPluginsOfProgram(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}

	packages := make([]*pulumirpc.PackageDependency, 0, len(plugins))
	for _, plugin := range plugins {
		packages = append(packages, &pulumirpc.PackageDependency{
			Kind:    "resource",
			Name:    plugin.name,
			Version: plugin.version,
			Server:  plugin.server,
		})
	}

	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

// GetRequiredPlugins is the older form of GetRequiredPackages, which engines before GetRequiredPackages call.
func (h *languageHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	plugins, err := h.requiredPluginsOfProgram(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}

	dependencies := make([]*pulumirpc.PluginDependency, 0, len(plugins))
	for _, plugin := range plugins {
		dependencies = append(dependencies, &pulumirpc.PluginDependency{
			Kind:    "resource",
			Name:    plugin.name,
			Version: plugin.version,
			Server:  plugin.server,
		})
	}

	return &pulumirpc.GetRequiredPluginsResponse{Plugins: dependencies}, nil
}

func (h *languageHost) requiredPluginsOfProgram(
	ctx context.Context, info *pulumirpc.ProgramInfo,
) ([]requiredPlugin, error) {
	if info == nil {
		return nil, status.Error(codes.InvalidArgument, "request has no program info")
	}

	opts, err := parsePythonOptions(info.GetRootDirectory(), info.GetOptions().AsMap())
	if err != nil {
		return nil, err
	}

	distributions, err := listDistributions(ctx, opts)
	if err != nil {
		return nil, err
	}

	plugins, err := requiredPlugins(distributions)
	if err != nil {
		return nil, err
	}
	logging.V(5).Infof("required plugins of %s: %+v", info.GetProgramDirectory(), plugins)

	return plugins, nil
}

// Run executes a Pulumi program through the exec script and waits for it to finish. A failing program is
// reported in RunResponse.Error, unless it has already shown the user its error: then RunResponse.Bail is set.
func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return nil, status.Error(codes.InvalidArgument, "run request has no program info")
	}

	engineAddress := h.currentEngineAddress()
	if engineAddress == "" {
		return nil, status.Error(codes.FailedPrecondition,
			"no engine address: start the host with the engine address as argument or call Handshake first")
	}

	opts, err := parsePythonOptions(info.GetRootDirectory(), info.GetOptions().AsMap())
	if err != nil {
		return nil, err
	}

	configEnv, err := programConfigEnvironment(req)
	if err != nil {
		return nil, err
	}

	// The program stops when the engine cancels this request or sends the Cancel RPC.
	runCtx, stopRun := context.WithCancel(h.cancelRuns)
	defer stopRun()
	context.AfterFunc(ctx, stopRun)

	args := append([]string{h.execScript}, h.execScriptArguments(req, engineAddress)...)
	cmd, err := pythonCommand(runCtx, opts, nil, args...)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(cmd.Env, configEnv...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	interruptOnCancel(cmd)

	logging.V(5).Infof("running program: %s %s", cmd.Path, strings.Join(args, " "))
	runErr := cmd.Run()

	return runResponse(runErr), nil
}

// programConfigEnvironment returns the PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS variables from which the
// exec script loads the stack configuration. Both are always valid JSON: the SDK fails on a JSON null.
func programConfigEnvironment(req *pulumirpc.RunRequest) ([]string, error) {
	config := req.GetConfig()
	if config == nil {
		config = map[string]string{}
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("encoding the stack configuration as JSON failed: %w", err)
	}

	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("encoding the secret configuration keys as JSON failed: %w", err)
	}

	return []string{"PULUMI_CONFIG=" + string(configJSON), "PULUMI_CONFIG_SECRET_KEYS=" + string(secretKeysJSON)}, nil
}

// execScriptArguments returns the command line of the exec script, which parses it with argparse.
func (h *languageHost) execScriptArguments(req *pulumirpc.RunRequest, engineAddress string) []string {
	var args []string
	addFlag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}

	addFlag("monitor", req.GetMonitorAddress())
	addFlag("engine", engineAddress)
	addFlag("project", req.GetProject())
	addFlag("root_directory", req.GetInfo().GetRootDirectory())
	addFlag("stack", req.GetStack())
	addFlag("pwd", req.GetPwd())
	addFlag("dry_run", strconv.FormatBool(req.GetDryRun()))
	addFlag("parallel", strconv.Itoa(int(req.GetParallel())))
	addFlag("tracing", h.tracingEndpoint)
	addFlag("organization", req.GetOrganization())

	// The entry point is relative to --pwd. The engine sends "." for a program directory with __main__.py.
	args = append(args, req.GetInfo().GetEntryPoint())

	return append(args, req.GetArgs()...)
}

// runResponse translates the exit status of the exec script into the engine's terms.
func runResponse(runErr error) *pulumirpc.RunResponse {
	if runErr == nil {
		return &pulumirpc.RunResponse{}
	}

	var exitErr *exec.ExitError
	if !errors.As(runErr, &exitErr) {
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("could not run the Python exec script: %v", runErr),
		}
	}

	switch code := exitErr.ExitCode(); code {
	case userActionableExitCode:
		return &pulumirpc.RunResponse{Bail: true}
	case -1:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program was terminated: %v", exitErr)}
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", code)}
	}
}

// interruptOnCancel makes a cancelled command receive SIGINT first, so Python can run its cleanup, and SIGKILL
// only after interruptGracePeriod.
func interruptOnCancel(cmd *exec.Cmd) {
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}

		return nil
	}
	cmd.WaitDelay = interruptGracePeriod
}

// Cancel stops every running program and plugin of this host.
func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()

	return &emptypb.Empty{}, nil
}

// aboutScript prints the interpreter path and its version as a JSON list.
const aboutScript = `import json, platform, sys; print(json.dumps([sys.executable, platform.python_version()]))`

// About reports the Python interpreter that the program would run with, for `pulumi about`.
func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	var opts pythonOptions
	if info := req.GetInfo(); info != nil {
		var err error
		opts, err = parsePythonOptions(info.GetRootDirectory(), info.GetOptions().AsMap())
		if err != nil {
			return nil, err
		}
	}

	cmd, err := pythonCommand(ctx, opts, nil, "-c", aboutScript)
	if err != nil {
		return nil, err
	}
	output, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("querying the Python interpreter %s failed: %w", cmd.Path, err)
	}

	var executableAndVersion []string
	if err := json.Unmarshal(output, &executableAndVersion); err != nil || len(executableAndVersion) != 2 {
		return nil, fmt.Errorf("unexpected output of %s: %q", cmd.Path, output)
	}

	return &pulumirpc.AboutResponse{
		Executable: executableAndVersion[0],
		Version:    executableAndVersion[1],
		Metadata:   map[string]string{"toolchain": "pip", "languageHost": version},
	}, nil
}

// GetProgramDependencies lists the packages installed in the program's Python environment, as pip reports them.
func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return nil, status.Error(codes.InvalidArgument, "request has no program info")
	}

	opts, err := parsePythonOptions(info.GetRootDirectory(), info.GetOptions().AsMap())
	if err != nil {
		return nil, err
	}

	args := []string{"-m", "pip", "list", "--format", "json", "--disable-pip-version-check"}
	if !req.GetTransitiveDependencies() {
		args = append(args, "--not-required")
	}
	cmd, err := pythonCommand(ctx, opts, nil, args...)
	if err != nil {
		return nil, err
	}
	output, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("`%s %s` failed: %w", cmd.Path, strings.Join(args, " "), err)
	}

	var listed []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(output, &listed); err != nil {
		return nil, fmt.Errorf("parsing the output of pip list failed: %w", err)
	}

	dependencies := make([]*pulumirpc.DependencyInfo, 0, len(listed))
	for _, entry := range listed {
		dependencies = append(dependencies, &pulumirpc.DependencyInfo{Name: entry.Name, Version: entry.Version})
	}

	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: dependencies}, nil
}

// RuntimeOptionsPrompts offers a virtualenv directory when `pulumi new` creates a project without one.
func (h *languageHost) RuntimeOptionsPrompts(
	ctx context.Context, req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	if _, ok := req.GetInfo().GetOptions().AsMap()["virtualenv"]; ok {
		return &pulumirpc.RuntimeOptionsResponse{}, nil
	}

	defaultValue := &pulumirpc.RuntimeOptionPrompt_RuntimeOptionValue{
		PromptType:  pulumirpc.RuntimeOptionPrompt_STRING,
		StringValue: "venv",
	}

	return &pulumirpc.RuntimeOptionsResponse{Prompts: []*pulumirpc.RuntimeOptionPrompt{{
		Key:         "virtualenv",
		Description: "The virtualenv directory, relative to the project directory",
		PromptType:  pulumirpc.RuntimeOptionPrompt_STRING,
		Choices:     []*pulumirpc.RuntimeOptionPrompt_RuntimeOptionValue{defaultValue},
		Default:     defaultValue,
	}}}, nil
}

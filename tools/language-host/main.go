// Command pulumi-language-python is the tkg-gpu project's own Python language host for the Pulumi engine.
//
// The upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not served by
// the Go module proxy this project can reach, so this program implements the pulumirpc LanguageRuntime gRPC
// service itself. It supports the pip toolchain only: the `virtualenv` runtime option, or the ambient Python when
// the option is absent. Programs run through the `pulumi-language-python-exec` script of the Pulumi Python SDK,
// which must sit next to this binary.
//
// Like every Pulumi plugin, the host listens on a free port of 127.0.0.1 and prints that port number as the
// first line of its standard output. The engine passes its own gRPC address as the last positional argument.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// version is reported by `--version` and GetPluginInfo. The build script overrides it with -ldflags -X. The
// release part matches the Pulumi Python SDK whose exec script this host launches. The build metadata
// suffix marks the project's own build and does not change semver precedence.
var version = "3.272.0+tkg-gpu"

// execScriptName is the file name of the SDK script that runs a Pulumi program inside Python.
const execScriptName = "pulumi-language-python-exec"

// engineHealthInterval is how often the host sends a health check to the engine. The host exits when a check
// fails, so it outlives a crashed CLI process by at most this interval.
const engineHealthInterval = 5 * time.Minute

func main() {
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	tracingEndpoint := flag.String("tracing", "", "Zipkin-compatible tracing endpoint, passed on to Python programs")
	executor := flag.String("use-executor", "",
		"path of the "+execScriptName+" script (default: next to this binary)")
	flag.Parse()

	if *showVersion {
		fmt.Println(version)
		return
	}

	logging.InitLogging(false, 0, false)

	execScript, err := locateExecScript(*executor)
	if err != nil {
		cmdutil.Exit(err)
	}
	logging.V(5).Infof("using exec script %s", execScript)

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[len(args)-1]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, engineHealthInterval, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the engine health check for %s: %w", engineAddress, err))
		}
	}

	// rpcutil stops the server when this channel is closed.
	stopServing := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stopServing)
	}()

	host := newLanguageHost(execScript, engineAddress, *tracingEndpoint)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stopServing,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host gRPC server: %w", err))
	}

	// The engine reads this line to learn where to connect.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host gRPC server stopped: %w", err))
	}
}

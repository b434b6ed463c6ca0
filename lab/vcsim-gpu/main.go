// Command vcsim-gpu serves a simulated vCenter for the tkg-gpu lab: govmomi's simulator
// with one GPU cluster, per-host PCI passthrough systems, TKG-like VM templates, power-on
// checks for passthrough VMs, and /lab/ control endpoints. It listens on loopback only.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// readyLine is the one JSON line printed to stdout once the server accepts connections.
type readyLine struct {
	URL        string   `json:"url"`
	Thumbprint string   `json:"thumbprint"`
	Hosts      []string `json:"hosts"`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	opts, err := parseOptions(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim-gpu:", err)
		return 2
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	type startResult struct {
		lab *Lab
		err error
	}
	started := make(chan startResult, 1)
	go func() {
		lab, err := startLab(opts, log)
		started <- startResult{lab, err}
	}()

	var lab *Lab
	select {
	case received := <-signals:
		// NOTE: the simulator's temporary directory stays behind when start is interrupted.
		log.Warn("stopping before the server started", "signal", received.String())
		return 1
	case result := <-started:
		if result.err != nil {
			log.Error("start failed", "error", result.err)
			return 1
		}
		lab = result.lab
	}
	defer lab.Close()

	line, err := json.Marshal(readyLine{URL: lab.url.String(), Thumbprint: lab.thumbprint, Hosts: lab.hostNames()})
	if err != nil {
		log.Error("encode ready line failed", "error", err)
		return 1
	}
	fmt.Println(string(line))

	log.Info("serving", "url", lab.url.String(), "hosts", len(lab.hosts), "gpusPerHost", gpuCount(opts.gpus),
		"esxiVersion", productVersion(opts.esxiVersion), "user", opts.username)

	received := <-signals
	log.Info("stopping", "signal", received.String())

	return 0
}

func gpuCount(requests []gpuRequest) int {
	total := 0
	for _, request := range requests {
		total += request.count
	}

	return total
}

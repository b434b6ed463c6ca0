// Command oci-registry serves an in-memory OCI registry over HTTPS on loopback for the tkg-gpu lab,
// so that tests install the GPU Operator chart from an oci:// reference as an air-gapped site does.
// The registry is go-containerregistry's pkg/registry; each request is logged on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// readyLine is the one JSON line printed to stdout once the server accepts connections.
type readyLine struct {
	URL string `json:"url"`
}

type options struct {
	listen   string
	certFile string
	keyFile  string
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	opts, err := parseOptions(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-registry:", err)
		return 2
	}

	listener, err := net.Listen("tcp", opts.listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-registry: listen:", err)
		return 1
	}

	requests := log.New(os.Stderr, "", log.LstdFlags)
	server := &http.Server{
		Handler:           registry.New(registry.Logger(requests)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          requests,
	}
	served := make(chan error, 1)
	go func() { served <- server.ServeTLS(listener, opts.certFile, opts.keyFile) }()

	line, err := json.Marshal(readyLine{URL: "https://" + listener.Addr().String()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-registry: encode ready line:", err)
		return 1
	}
	fmt.Println(string(line))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	select {
	case received := <-signals:
		requests.Printf("stopping on %s", received)
	case err := <-served:
		fmt.Fprintln(os.Stderr, "oci-registry: serve:", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "oci-registry: shutdown:", err)
		return 1
	}

	return 0
}

func parseOptions(args []string, output io.Writer) (options, error) {
	flags := flag.NewFlagSet("oci-registry", flag.ContinueOnError)
	flags.SetOutput(output)
	flags.Usage = func() {
		fmt.Fprintln(output, "Serves an in-memory OCI registry over HTTPS on 127.0.0.1 for the tkg-gpu lab.")
		fmt.Fprintln(output, "Usage: oci-registry --cert FILE --key FILE [--listen 127.0.0.1:PORT]")
		flags.PrintDefaults()
	}
	listen := flags.String("listen", "127.0.0.1:0", "loopback `address:port` to serve HTTPS on; port 0 picks a free port")
	certFile := flags.String("cert", "", "PEM `file` of the server certificate, with 127.0.0.1 as an IP address SAN")
	keyFile := flags.String("key", "", "PEM `file` of the server certificate's private key")
	if err := flags.Parse(args); err != nil {
		return options{}, err
	}
	if flags.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q; every setting is a flag, see --help", flags.Arg(0))
	}
	if *certFile == "" || *keyFile == "" {
		return options{}, errors.New("--cert and --key are required: the registry serves HTTPS only, as Helm expects")
	}

	address, err := loopbackAddress(*listen)
	if err != nil {
		return options{}, err
	}

	return options{listen: address, certFile: *certFile, keyFile: *keyFile}, nil
}

// loopbackAddress accepts only a literal loopback IP, so the lab registry is never reachable from elsewhere.
func loopbackAddress(address string) (string, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "", fmt.Errorf("invalid --listen %q: %v; use 127.0.0.1:PORT", address, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("invalid --listen %q: only a loopback IP address such as 127.0.0.1 is allowed", address)
	}

	return address, nil
}

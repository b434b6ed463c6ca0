// Command oci-registry serves an in-memory OCI registry over HTTPS on loopback for the tkg-gpu lab,
// so that tests install the GPU Operator chart from an oci:// reference as an air-gapped site does.
// The registry is go-containerregistry's pkg/registry; each request is logged on stderr.
package main

import (
	"context"
	"crypto/tls"
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

// errReported marks a flag error that the flag package has already printed with the usage text.
var errReported = errors.New("invalid flags")

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
	if errors.Is(err, errReported) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-registry:", err)
		return 2
	}

	// Load the certificate before listening, so that a bad file fails the start before the ready line.
	certificate, err := tls.LoadX509KeyPair(opts.certFile, opts.keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-registry: load --cert and --key:", err)
		return 1
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
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{certificate}, MinVersion: tls.VersionTLS12},
	}
	served := make(chan error, 1)
	go func() { served <- server.ServeTLS(listener, "", "") }()

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
	if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
		return options{}, err
	} else if err != nil {
		return options{}, errReported
	}
	if flags.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q; every setting is a flag, see --help", flags.Arg(0))
	}

	address, err := loopbackAddress(*listen)
	if err != nil {
		return options{}, err
	}
	if *certFile == "" || *keyFile == "" {
		return options{}, errors.New("--cert and --key are required: the registry serves HTTPS only, as Helm expects")
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

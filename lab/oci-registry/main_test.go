package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseOptionsAcceptsLoopback(t *testing.T) {
	opts, err := parseOptions([]string{"--cert", "c.pem", "--key", "k.pem", "--listen", "127.0.0.1:5000"}, io.Discard)
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}
	if opts.listen != "127.0.0.1:5000" || opts.certFile != "c.pem" || opts.keyFile != "k.pem" {
		t.Fatalf("unexpected options %+v", opts)
	}
}

func TestParseOptionsRejectsOtherAddresses(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:5000", ":5000", "localhost:5000", "192.0.2.1:5000", "127.0.0.1"} {
		_, err := parseOptions([]string{"--listen", listen}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("--listen %s: expected an error naming --listen, got %v", listen, err)
		}
	}
}

func TestParseOptionsRequiresCertificate(t *testing.T) {
	_, err := parseOptions([]string{"--key", "k.pem"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--cert and --key are required") {
		t.Fatalf("expected the missing certificate to be named, got %v", err)
	}
}

func TestParseOptionsReportsUnknownFlagOnce(t *testing.T) {
	var output strings.Builder
	_, err := parseOptions([]string{"--port", "5000"}, &output)
	if !errors.Is(err, errReported) {
		t.Fatalf("expected errReported, got %v", err)
	}
	if count := strings.Count(output.String(), "flag provided but not defined"); count != 1 {
		t.Fatalf("expected the flag error once in the output, found it %d times:\n%s", count, output.String())
	}
}

func TestRunFailsBeforeReadyLineWithoutCertificate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	stdout := os.Stdout
	read, write, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = write
	code := run([]string{"--cert", missing, "--key", missing})
	os.Stdout = stdout
	write.Close()
	printed, _ := io.ReadAll(read)

	if code != 1 {
		t.Fatalf("expected exit code 1 for a missing certificate, got %d", code)
	}
	if len(printed) != 0 {
		t.Fatalf("expected no ready line, got %q", printed)
	}
}

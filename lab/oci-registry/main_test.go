package main

import (
	"io"
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
		_, err := parseOptions([]string{"--cert", "c.pem", "--key", "k.pem", "--listen", listen}, io.Discard)
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

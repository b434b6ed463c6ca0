package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

const (
	passwordEnvVar = "VCSIM_GPU_PASSWORD"

	maxHosts         = 99    // keeps host names two digits wide
	maxHostMemoryGiB = 24576 // 24 TiB
)

// options is the validated command line.
type options struct {
	listen        string
	hosts         int
	gpus          []gpuRequest
	username      string
	password      string
	hostMemoryGiB int
	esxiVersion   types.ESXiVersion
	// noRebind contains the names of hosts whose passthrough changes wait for a reboot.
	noRebind map[string]bool
}

// supportedESXiVersions are the releases govmomi v0.56.0 can simulate that also support
// Dynamic DirectPath I/O (ESXi 7.0 and later).
var supportedESXiVersions = []types.ESXiVersion{
	types.ESXi7000, types.ESXi7010, types.ESXi7020,
	types.ESXi8000, types.ESXi8010, types.ESXi8020,
}

func hostName(index int) string {
	return fmt.Sprintf("esxi-%02d.lab.local", index+1)
}

// parseOptions parses args (without the program name) and reads the password through
// getenv. Usage and errors go to output.
func parseOptions(args []string, getenv func(string) string, output io.Writer) (options, error) {
	flags := flag.NewFlagSet("vcsim-gpu", flag.ContinueOnError)
	flags.SetOutput(output)
	flags.Usage = func() {
		fmt.Fprintf(output, "Usage: %s=... vcsim-gpu [flags]\n\n", passwordEnvVar)
		fmt.Fprintln(output, "Serves a simulated vCenter with NVIDIA GPUs on 127.0.0.1 for the tkg-gpu lab.")
		fmt.Fprintf(output, "The login password is read from %s.\n\n", passwordEnvVar)
		flags.PrintDefaults()
	}

	listen := flags.String("listen", "127.0.0.1:0", "loopback `address:port` to serve HTTPS on; port 0 picks a free port")
	hosts := flags.Int("hosts", 2, fmt.Sprintf("number of ESXi hosts in the cluster (1-%d)", maxHosts))
	gpuSpec := flags.String("gpus", "A100-PCIE-80GB:2", "GPUs per host as MODEL:COUNT[,MODEL:COUNT...], or none; models: "+gpuModelNames())
	username := flags.String("username", "administrator@vsphere.local", "login user name for the SOAP API and the /lab/ endpoints")
	hostMemoryGiB := flags.Int("host-memory-gib", 512, "physical memory of each host in GiB")
	esxiVersion := flags.String("esxi-version", "8.0.2", "ESXi version of every host: "+esxiVersionNames())
	noRebind := flags.String("no-rebind", "", "comma-separated host names whose passthrough changes take effect only after a reboot")

	if err := flags.Parse(args); err != nil {
		return options{}, err
	}
	if flags.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q: vcsim-gpu takes flags only", flags.Arg(0))
	}

	opts := options{
		hosts:         *hosts,
		username:      *username,
		password:      getenv(passwordEnvVar),
		hostMemoryGiB: *hostMemoryGiB,
	}

	var err error
	if opts.listen, err = checkLoopbackAddress(*listen); err != nil {
		return options{}, err
	}
	if opts.hosts < 1 || opts.hosts > maxHosts {
		return options{}, fmt.Errorf("invalid --hosts %d: expected 1 to %d", opts.hosts, maxHosts)
	}
	if opts.gpus, err = parseGPUSpec(*gpuSpec); err != nil {
		return options{}, err
	}
	if strings.TrimSpace(opts.username) == "" {
		return options{}, errors.New("--username must not be empty")
	}
	if opts.password == "" {
		return options{}, fmt.Errorf("%s is not set: export the login password in it before starting vcsim-gpu", passwordEnvVar)
	}
	if opts.hostMemoryGiB < 1 || opts.hostMemoryGiB > maxHostMemoryGiB {
		return options{}, fmt.Errorf("invalid --host-memory-gib %d: expected 1 to %d", opts.hostMemoryGiB, maxHostMemoryGiB)
	}
	if opts.esxiVersion, err = parseESXiVersion(*esxiVersion); err != nil {
		return options{}, err
	}
	if opts.noRebind, err = parseNoRebind(*noRebind, opts.hosts); err != nil {
		return options{}, err
	}

	return opts, nil
}

// checkLoopbackAddress accepts only a literal loopback IP, so the simulator can never be
// reached from another machine.
func checkLoopbackAddress(address string) (string, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", fmt.Errorf("invalid --listen %q: %v; use 127.0.0.1:PORT", address, err)
	}

	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("invalid --listen %q: only a loopback IP address such as 127.0.0.1 is allowed", address)
	}

	number, err := strconv.Atoi(port)
	if err != nil || number < 0 || number > 65535 {
		return "", fmt.Errorf("invalid --listen %q: port must be 0 to 65535", address)
	}

	return net.JoinHostPort(ip.String(), strconv.Itoa(number)), nil
}

func esxiVersionNames() string {
	names := make([]string, len(supportedESXiVersions))
	for i, version := range supportedESXiVersions {
		names[i] = version.String()
	}

	return strings.Join(names, ", ")
}

func parseESXiVersion(text string) (types.ESXiVersion, error) {
	version, err := types.ParseESXiVersion(strings.TrimSpace(text))
	if err == nil {
		for _, supported := range supportedESXiVersions {
			if version == supported {
				return version, nil
			}
		}
	}

	return 0, fmt.Errorf("unsupported --esxi-version %q: expected one of %s", text, esxiVersionNames())
}

func parseNoRebind(list string, hosts int) (map[string]bool, error) {
	names := map[string]bool{}
	if strings.TrimSpace(list) == "" {
		return names, nil
	}

	valid := map[string]bool{}
	for i := range hosts {
		valid[hostName(i)] = true
	}

	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if !valid[name] {
			return nil, fmt.Errorf("unknown host %q in --no-rebind: hosts are %s to %s", name, hostName(0), hostName(hosts-1))
		}
		names[name] = true
	}

	return names, nil
}

// productVersion returns the full version string, e.g. "8.0.2" for types.ESXi8020.
func productVersion(version types.ESXiVersion) string {
	text := version.String()
	for strings.Count(text, ".") < 2 {
		text += ".0"
	}

	return text
}

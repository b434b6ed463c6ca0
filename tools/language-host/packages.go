package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
)

// listDistributionsScript prints, as JSON, every installed distribution that may carry a Pulumi plugin: those
// with a pulumi-plugin.json file in a top-level package directory, and those whose name starts with "pulumi-"
// (older provider SDKs ship no pulumi-plugin.json). Distributions shadowed by an earlier sys.path entry are
// skipped. Names are normalised as PEP 503 does.
const listDistributionsScript = `
import importlib.metadata, json, re, sys
seen = set()
found = []
for dist in importlib.metadata.distributions():
    raw_name = dist.metadata["Name"]
    if not raw_name:
        continue
    name = re.sub(r"[-_.]+", "-", raw_name).lower()
    if name in seen:
        continue
    seen.add(name)
    plugin_json = ""
    for entry in dist.files or []:
        if len(entry.parts) == 2 and entry.parts[1] == "pulumi-plugin.json":
            plugin_json = str(dist.locate_file(entry))
            break
    if plugin_json or name.startswith("pulumi-"):
        found.append({"name": name, "version": dist.version, "pluginJson": plugin_json})
json.dump(found, sys.stdout)
`

// pythonDistribution is one entry printed by listDistributionsScript.
type pythonDistribution struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	PluginJSON string `json:"pluginJson"`
}

// pluginMetadata is the content of a pulumi-plugin.json file that this host uses.
type pluginMetadata struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
	// Parameterization is set by packages generated for parameterized providers. This host does not
	// report those packages (see pluginOfDistribution).
	Parameterization json.RawMessage `json:"parameterization"`
}

// requiredPlugin is a resource plugin that an installed package needs.
type requiredPlugin struct {
	name    string
	version string
	server  string
}

// packagesWithoutPlugin are Pulumi packages that need no resource plugin. Some of their releases lack the
// pulumi-plugin.json with "resource": false that would declare this.
var packagesWithoutPlugin = map[string]bool{
	"pulumi-policy":  true,
	"pulumi-esc-sdk": true,
}

// listDistributions runs listDistributionsScript in the selected interpreter.
func listDistributions(ctx context.Context, opts pythonOptions) ([]pythonDistribution, error) {
	cmd, err := pythonCommand(ctx, opts, nil, "-c", listDistributionsScript)
	if err != nil {
		return nil, err
	}

	var stderr strings.Builder
	cmd.Stderr = &stderr
	output, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing installed Python packages with %s failed: %w: %s",
			cmd.Path, err, strings.TrimSpace(stderr.String()))
	}

	var distributions []pythonDistribution
	if err := json.Unmarshal(output, &distributions); err != nil {
		return nil, fmt.Errorf("parsing the package list printed by %s failed: %w", cmd.Path, err)
	}

	return distributions, nil
}

// requiredPlugins returns the resource plugins of the installed distributions, in listing order.
func requiredPlugins(distributions []pythonDistribution) ([]requiredPlugin, error) {
	var plugins []requiredPlugin
	for _, dist := range distributions {
		if packagesWithoutPlugin[dist.Name] {
			continue
		}

		plugin, err := pluginOfDistribution(dist)
		if err != nil {
			return nil, err
		}
		if plugin != nil {
			plugins = append(plugins, *plugin)
		}
	}

	return plugins, nil
}

// pluginOfDistribution derives the resource plugin of one distribution, or nil when it has none.
func pluginOfDistribution(dist pythonDistribution) (*requiredPlugin, error) {
	var meta pluginMetadata
	if dist.PluginJSON != "" {
		data, err := os.ReadFile(dist.PluginJSON)
		if err != nil {
			return nil, fmt.Errorf("reading pulumi-plugin.json of Python package %s: %w", dist.Name, err)
		}
		if err := json.Unmarshal(data, &meta); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", dist.PluginJSON, err)
		}
		if !meta.Resource {
			return nil, nil
		}
	}

	if len(meta.Parameterization) > 0 && string(meta.Parameterization) != "null" {
		// NOTE: parameterized packages (a base provider plus a parameter value) are not reported, so the
		// engine will not load their provider ahead of the program. None are used by this project yet.
		logging.V(5).Infof("skipping parameterized package %s", dist.Name)
		return nil, nil
	}

	plugin := &requiredPlugin{name: meta.Name, version: meta.Version, server: meta.Server}
	if plugin.name == "" {
		plugin.name = strings.TrimPrefix(dist.Name, "pulumi-")
	}

	if plugin.version == "" {
		converted, err := semverFromPEP440(dist.Version)
		if err != nil {
			logging.V(5).Infof("skipping Python package %s: %v", dist.Name, err)
			return nil, nil
		}
		plugin.version = converted
	}

	if !strings.HasPrefix(plugin.version, "v") {
		plugin.version = "v" + plugin.version
	}

	return plugin, nil
}

// pep440Release matches the PEP 440 forms that have an exact semver equivalent: a release number followed by an
// optional pre-release (a, b, rc), post-release and development-release segment.
var pep440Release = regexp.MustCompile(
	`^(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev(\d+))?$`)

// semverFromPEP440 converts a Python package version to the plugin's semver: "1.2" becomes "1.2.0", "1.2.3rc4"
// becomes "1.2.3-rc.4", and post- and development releases become build metadata ("1.2.3.post1" to
// "1.2.3+post1"). Epochs and local versions have no semver equivalent and are rejected.
func semverFromPEP440(packageVersion string) (string, error) {
	match := pep440Release.FindStringSubmatch(packageVersion)
	if match == nil {
		return "", fmt.Errorf("version %q has no semver equivalent", packageVersion)
	}

	release := strings.Split(match[1], ".")
	for len(release) < 3 {
		release = append(release, "0")
	}
	result := strings.Join(release, ".")

	preReleaseNames := map[string]string{"a": "alpha", "b": "beta", "rc": "rc"}
	if match[2] != "" {
		result += "-" + preReleaseNames[match[2]] + "." + match[3]
	}

	var build string
	if match[4] != "" {
		build += "post" + match[4]
	}
	if match[5] != "" {
		build += "dev" + match[5]
	}
	if build != "" {
		result += "+" + build
	}

	return result, nil
}

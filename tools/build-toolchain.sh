#!/usr/bin/env bash
# Build the binaries that the integration tests need from Go modules, and link them into one bin directory.
#
# Usage: tools/build-toolchain.sh
#   export PATH="$(tools/build-toolchain.sh):$PATH"
#
# Each binary is built into its own directory of the cache, and only when that directory does not exist yet:
#   pulumi                          Pulumi CLI, from the wrapper module tools/pulumi-bin
#   pulumi-language-python          the project's language host, from tools/language-host
#   pulumi-language-python-exec     scripts copied from the Pulumi Go SDK module at the version of
#   pulumi-resource-pulumi-python   the PyPI pulumi package
#   vcsim-gpu                       vCenter simulator, from lab/vcsim-gpu (skipped while that module is missing)
#
# Environment:
#   TKG_GPU_CACHE   cache directory (default: $XDG_CACHE_HOME/tkg-gpu, or ~/.cache/tkg-gpu)
#
# The cache also gets pulumi-home/, the PULUMI_HOME for tests. Progress goes to stderr; the only line on stdout
# is the bin directory. A `pulumi` found on PATH is used instead of building the CLI when `pulumi version` prints
# exactly $PULUMI_VERSION and the binary is not one of this cache's own.
set -euo pipefail

# Pulumi CLI release. tools/pulumi-bin/go.mod must require github.com/pulumi/pulumi/pkg/v3 at this version.
readonly PULUMI_VERSION=v3.274.0
# Release of the PyPI pulumi package. The exec script drives that package's runtime internals, so both must match.
readonly PYTHON_SDK_VERSION=v3.272.0
readonly LANGUAGE_HOST_VERSION="${PYTHON_SDK_VERSION#v}+tkg-gpu"

readonly PKG_MODULE=github.com/pulumi/pulumi/pkg/v3
readonly SDK_MODULE=github.com/pulumi/pulumi/sdk/v3
readonly CLI_VERSION_VARIABLE=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version

# File descriptor 3 keeps stdout for the final result. Everything else, including Go's output, goes to stderr.
exec 3>&1 1>&2

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$tools_dir")
readonly tools_dir repo_dir
readonly pulumi_wrapper_dir=$tools_dir/pulumi-bin
readonly language_host_dir=$tools_dir/language-host
readonly vcsim_dir=$repo_dir/lab/vcsim-gpu

export CGO_ENABLED=0

log() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf 'build-toolchain.sh: error: %s\n' "$*" >&2
    exit 1
}

# Print the direct (non-indirect) requirements of a go.mod file as MODULE@VERSION lines.
direct_requirements() {
    awk '
        $1 ~ /^\/\// { next }
        $1 == "require" && $2 == "(" { in_block = 1; next }
        in_block && $1 == ")" { in_block = 0; next }
        in_block && NF >= 2 && !/\/\/ indirect/ { print $1 "@" $2 }
        !in_block && $1 == "require" && NF >= 3 && !/\/\/ indirect/ { print $2 "@" $3 }
    ' "$1"
}

# Fail unless the module proxy serves MODULE@VERSION. The go command reads the module cache first, so a version
# that is already downloaded needs no network.
check_module_served() {
    local module_version=$1 output
    if ! output=$(cd "$scratch_dir" && go list -m -json "$module_version" 2>&1); then
        die "Go module $module_version is not available from the Go module proxy: $output"
    fi
}

# Print a short digest of the given strings and of the go.mod, go.sum and *.go files under DIR.
source_digest() {
    local dir=$1
    shift
    {
        printf '%s\n' "$@"
        go env GOVERSION
        (cd "$dir" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -not -path './.*' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-16
}

# NOTE: superseded build directories (an older digest or version) are never removed. Delete them, or the whole
# cache, to reclaim disk space.
#
# Run "BUILD_FUNCTION TMPDIR" to fill a new temporary directory, then rename it to FINAL_DIR. FINAL_DIR therefore
# exists only after a successful build, and its existence is what marks the build complete. Because the build
# function runs as an `if` condition, where `set -e` does not apply, each build function returns its own status.
build_into() {
    local description=$1 final_dir=$2 build_function=$3
    pending_dir=$(mktemp -d "$cache/.building.XXXXXX")
    if ! "$build_function" "$pending_dir"; then
        die "$description failed; see the output above"
    fi
    chmod 0755 "$pending_dir"
    mv -T -- "$pending_dir" "$final_dir"
    pending_dir=
}

build_pulumi_cli() {
    local out_dir=$1
    (cd "$pulumi_wrapper_dir" && go build -trimpath \
        -ldflags "-s -w -X $CLI_VERSION_VARIABLE=$PULUMI_VERSION" \
        -o "$out_dir/pulumi" "$PKG_MODULE/cmd/pulumi")
}

build_language_host() {
    local out_dir=$1
    (cd "$language_host_dir" && go build -trimpath \
        -ldflags "-s -w -X main.version=$LANGUAGE_HOST_VERSION" \
        -o "$out_dir/pulumi-language-python" .)
}

copy_python_scripts() {
    local out_dir=$1 sdk_dir
    sdk_dir=$(cd "$scratch_dir" && go mod download -json "$SDK_MODULE@$PYTHON_SDK_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
    if [[ -z "$sdk_dir" || ! -d "$sdk_dir" ]]; then
        printf 'go mod download printed no directory for %s\n' "$SDK_MODULE@$PYTHON_SDK_VERSION" >&2
        return 1
    fi

    # Module cache files are read-only, so install sets the mode of the copies (executable, writable by the owner).
    install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$out_dir/pulumi-language-python-exec" &&
        install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$out_dir/pulumi-resource-pulumi-python"
}

build_vcsim() {
    local out_dir=$1
    (cd "$vcsim_dir" && go build -trimpath -ldflags "-s -w" -o "$out_dir/vcsim-gpu" .)
}

# Point bin/NAME at TARGET with a symbolic link, replacing any old link atomically.
link_into_bin() {
    local target=$1 name=$2
    ln -sfn -- "$target" "$bin_dir/.$name.new"
    mv -Tf -- "$bin_dir/.$name.new" "$bin_dir/$name"
}

# Put the CLI itself into bin as a hard link (a copy when the file is on another file system), not a symbolic
# link. The CLI looks for its bundled plugins (language hosts, pulumi-resource-pulumi-python) next to its own
# resolved path and warns on every run when the copy on PATH lives elsewhere. With a real file in bin, the resolved
# path is bin itself, so the symbolic links there count as bundled.
place_cli_in_bin() {
    local target=$1
    if [[ "$bin_dir/pulumi" -ef "$target" ]] || cmp -s -- "$target" "$bin_dir/pulumi"; then
        return 0
    fi
    rm -f -- "$bin_dir/.pulumi.new"
    ln -- "$target" "$bin_dir/.pulumi.new" 2>/dev/null || cp -- "$target" "$bin_dir/.pulumi.new"
    mv -Tf -- "$bin_dir/.pulumi.new" "$bin_dir/pulumi"
}

# Print the path of a pulumi on PATH that reports exactly $PULUMI_VERSION and is not from this cache, if any.
find_accepted_path_cli() {
    local candidate resolved reported
    candidate=$(command -v pulumi 2>/dev/null) || return 0
    resolved=$(realpath -- "$candidate")
    case $resolved in
        "$cache"/*) return 0 ;;
    esac
    reported=$(PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME="$scratch_dir/pulumi-home" "$candidate" version 2>/dev/null) ||
        return 0
    if [[ "$reported" == "$PULUMI_VERSION" ]]; then
        printf '%s\n' "$resolved"
    fi
}

cache=${TKG_GPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tkg-gpu}
mkdir -p -- "$cache"
# A canonical path keeps the CLI's bundled-plugin check (which compares resolved paths) free of warnings.
cache=$(realpath -- "$cache")
readonly cache
readonly bin_dir=$cache/bin

exec 9>"$cache/.lock"
if ! flock -n 9; then
    log "waiting for another build-toolchain.sh run to finish (lock $cache/.lock)"
    flock 9
fi

# scratch_dir is a directory outside any Go module, for go commands that must not see one. pending_dir is the
# temporary directory of the build in progress. Both are removed when the script exits, also on failure.
scratch_dir=$(mktemp -d)
pending_dir=
trap 'rm -rf -- "$scratch_dir"; if [[ -n "$pending_dir" ]]; then rm -rf -- "$pending_dir"; fi' EXIT
readonly scratch_dir

command -v go >/dev/null || die "the go command is not on PATH; install Go (see tools/pulumi-bin/go.mod for the version)"

# Read the version from go.mod text, because `go list -m` would already need the proxy for the module graph.
wrapper_version=$(awk -v module="$PKG_MODULE" '
    $1 == module { print $2 }
    $1 == "require" && $2 == module { print $3 }
' "$pulumi_wrapper_dir/go.mod")
[[ "$wrapper_version" == "$PULUMI_VERSION" ]] ||
    die "tools/pulumi-bin/go.mod requires $PKG_MODULE $wrapper_version, but this script builds $PULUMI_VERSION; make them equal"

path_cli=$(find_accepted_path_cli)

# Step 1: fail early, naming the module, when the proxy does not serve a version that a build needs.
log "checking that the Go module proxy serves the required module versions"
required_modules=("$SDK_MODULE@$PYTHON_SDK_VERSION")
if [[ -z "$path_cli" ]]; then
    required_modules+=("$PKG_MODULE@$PULUMI_VERSION" "$SDK_MODULE@$PULUMI_VERSION")
fi
mapfile -t -O "${#required_modules[@]}" required_modules < <(direct_requirements "$language_host_dir/go.mod")
if [[ -f "$vcsim_dir/go.mod" ]]; then
    mapfile -t -O "${#required_modules[@]}" required_modules < <(direct_requirements "$vcsim_dir/go.mod")
fi
for module_version in "${required_modules[@]}"; do
    check_module_served "$module_version"
done

mkdir -p -- "$bin_dir" "$cache/pulumi-home/plugins"

# Pulumi CLI.
if [[ -n "$path_cli" ]]; then
    log "using Pulumi CLI $PULUMI_VERSION from PATH: $path_cli"
    cli_binary=$path_cli
else
    cli_digest=$(source_digest "$pulumi_wrapper_dir" "$PULUMI_VERSION" "-trimpath -s -w")
    cli_dir=$cache/pulumi-$PULUMI_VERSION-$cli_digest
    if [[ -d "$cli_dir" ]]; then
        log "Pulumi CLI $PULUMI_VERSION is up to date ($cli_dir)"
    else
        log "building Pulumi CLI $PULUMI_VERSION (about 8 min on 2 cores, longer when modules must be downloaded)"
        build_into "building Pulumi CLI $PULUMI_VERSION" "$cli_dir" build_pulumi_cli
    fi
    cli_binary=$cli_dir/pulumi
fi

# Language host.
host_digest=$(source_digest "$language_host_dir" "$LANGUAGE_HOST_VERSION" "-trimpath -s -w")
host_dir=$cache/language-host-$host_digest
if [[ -d "$host_dir" ]]; then
    log "language host $LANGUAGE_HOST_VERSION is up to date ($host_dir)"
else
    log "building language host $LANGUAGE_HOST_VERSION"
    build_into "building the language host" "$host_dir" build_language_host
fi

# SDK scripts.
scripts_dir=$cache/python-sdk-scripts-$PYTHON_SDK_VERSION
if [[ -d "$scripts_dir" ]]; then
    log "Python SDK scripts $PYTHON_SDK_VERSION are up to date ($scripts_dir)"
else
    log "copying Python SDK scripts from $SDK_MODULE@$PYTHON_SDK_VERSION"
    build_into "copying the Python SDK scripts" "$scripts_dir" copy_python_scripts
fi

# Link the Pulumi binaries first, so that a failing simulator build does not hold them back.
log "linking the Pulumi binaries into $bin_dir"
place_cli_in_bin "$cli_binary"
link_into_bin "$host_dir/pulumi-language-python" pulumi-language-python
link_into_bin "$scripts_dir/pulumi-language-python-exec" pulumi-language-python-exec
link_into_bin "$scripts_dir/pulumi-resource-pulumi-python" pulumi-resource-pulumi-python

# A scratch PULUMI_HOME keeps the log directory that every CLI run creates out of the tests' PULUMI_HOME.
reported_cli=$(PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME="$scratch_dir/pulumi-home" "$bin_dir/pulumi" version)
[[ "$reported_cli" == "$PULUMI_VERSION" ]] ||
    die "$bin_dir/pulumi reports version $reported_cli, expected $PULUMI_VERSION"
reported_host=$("$bin_dir/pulumi-language-python" --version)
[[ "$reported_host" == "$LANGUAGE_HOST_VERSION" ]] ||
    die "$bin_dir/pulumi-language-python reports version $reported_host, expected $LANGUAGE_HOST_VERSION"

# vCenter simulator.
if [[ -f "$vcsim_dir/go.mod" ]]; then
    vcsim_digest=$(source_digest "$vcsim_dir" "-trimpath -s -w")
    vcsim_build_dir=$cache/vcsim-gpu-$vcsim_digest
    if [[ -d "$vcsim_build_dir" ]]; then
        log "vcsim-gpu is up to date ($vcsim_build_dir)"
    else
        log "building vcsim-gpu from lab/vcsim-gpu"
        build_into "building lab/vcsim-gpu" "$vcsim_build_dir" build_vcsim
    fi
    link_into_bin "$vcsim_build_dir/vcsim-gpu" vcsim-gpu
else
    log "skipping vcsim-gpu: $vcsim_dir/go.mod does not exist yet"
    rm -f -- "$bin_dir/vcsim-gpu"
fi

printf '%s\n' "$bin_dir" >&3

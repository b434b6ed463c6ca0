#!/usr/bin/env bash
# Build the binaries that the integration tests need from Go modules, and link them into one bin directory.
#
# Usage: tools/build-toolchain.sh [--with-kubernetes]
#   export PATH="$(tools/build-toolchain.sh):$PATH"
#
# Each binary is built into its own directory of the cache, and only when that directory does not exist yet:
#   pulumi                          Pulumi CLI, from the wrapper module tools/pulumi-bin
#   pulumi-language-python          the project's language host, from tools/language-host
#   pulumi-language-python-exec     scripts copied from the Pulumi Go SDK module at the version of
#   pulumi-resource-pulumi-python   the PyPI pulumi package
#   vcsim-gpu                       vCenter simulator, from lab/vcsim-gpu
#   oci-registry                    in-memory OCI registry for chart tests, from lab/oci-registry
#
# With --with-kubernetes, or TKG_GPU_WITH_KUBERNETES=1, it also builds the Kubernetes group. Measured with an empty
# Go build cache on 2 cores: 47 min while the cores were shared with other builds, and 26 min on its own. The whole
# script took 34.5 min from empty module, build and tool caches (17 min on a faster 2-core machine). It left about
# 10 GB of Go build cache, 3 GB of modules and 0.8 GB of binaries. The group:
#   kube-apiserver, kube-controller-manager, kube-scheduler
#                                   from the wrapper module tools/k8s-bin
#   etcd                            from the wrapper module tools/etcd-bin
#   kwok                            from the wrapper module tools/kwok-bin
#   pulumi-resource-kubernetes      the Kubernetes provider, built from a writable copy of its module and installed
#                                   into pulumi-home/ only (a provider on PATH would take precedence over the plugin
#                                   cache and make the CLI warn on every run)
#
# Environment:
#   TKG_GPU_CACHE             cache directory (default: $XDG_CACHE_HOME/tkg-gpu, or ~/.cache/tkg-gpu)
#   TKG_GPU_WITH_KUBERNETES   1 to build the Kubernetes group as --with-kubernetes does; 0 or unset not to
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

# Kubernetes group (--with-kubernetes).
# Release of kube-apiserver, kube-controller-manager and kube-scheduler. tools/k8s-bin/go.mod must be written for it
# by tools/k8s-bin/generate-go-mod.sh.
readonly KUBERNETES_VERSION=v1.36.3
# etcd release. tools/etcd-bin/go.mod must require go.etcd.io/etcd/server/v3 at this version. Kubernetes 1.34 to 1.36
# are paired with etcd 3.6 (kwok v0.8.0, pkg/kwokctl/components/etcd_version.go).
readonly ETCD_VERSION=v3.6.14
# kwok release. tools/kwok-bin/go.mod must require sigs.k8s.io/kwok at this version.
readonly KWOK_VERSION=v0.8.0
# Version that the Kubernetes provider reports and is installed as. The engine looks the plugin up by the exact
# version in the pulumi-plugin.json of the PyPI pulumi_kubernetes package, so both must be equal.
readonly KUBERNETES_PROVIDER_VERSION=4.34.2
# NOTE: the Go module proxy rejects every provider version newer than v4.25.0 that was tried (the commits of 4.32.0,
# 4.33.0 and 4.34.0), so the provider is built from the v4.25.0 commit and only stamped as
# $KUBERNETES_PROVIDER_VERSION. Provider features released after 4.25.0 are missing from this build.
readonly KUBERNETES_PROVIDER_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
# SDK module of the same release (its tag is the commit after the provider's). The provider imports a few of its
# Go packages, which upstream builds from the same commit through a local replace.
readonly KUBERNETES_PROVIDER_SDK_VERSION=v4.25.0

readonly KUBERNETES_MODULE=k8s.io/kubernetes
readonly KUBERNETES_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler)
readonly ETCD_MODULE=go.etcd.io/etcd/server/v3
readonly KWOK_MODULE=sigs.k8s.io/kwok
readonly KUBERNETES_PROVIDER_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
readonly KUBERNETES_PROVIDER_SDK_MODULE=github.com/pulumi/pulumi-kubernetes/sdk/v4

# File descriptor 3 keeps stdout for the final result. Everything else, including Go's output, goes to stderr.
exec 3>&1 1>&2

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$tools_dir")
readonly tools_dir repo_dir
readonly pulumi_wrapper_dir=$tools_dir/pulumi-bin
readonly language_host_dir=$tools_dir/language-host
readonly vcsim_dir=$repo_dir/lab/vcsim-gpu
readonly oci_registry_dir=$repo_dir/lab/oci-registry
readonly k8s_wrapper_dir=$tools_dir/k8s-bin
readonly etcd_wrapper_dir=$tools_dir/etcd-bin
readonly kwok_wrapper_dir=$tools_dir/kwok-bin

export CGO_ENABLED=0

log() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf 'build-toolchain.sh: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<'USAGE'
Usage: tools/build-toolchain.sh [--with-kubernetes]

Build the test toolchain into the cache directory ($TKG_GPU_CACHE, default ~/.cache/tkg-gpu) and print its bin
directory on stdout.

  --with-kubernetes   also build kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and the
                      Kubernetes provider plugin (same as TKG_GPU_WITH_KUBERNETES=1)
  -h, --help          print this help and exit
USAGE
}

# Print the version at which the go.mod file GO_MOD requires MODULE, or nothing.
required_version() {
    local go_mod=$1 module=$2
    go mod edit -fmt -print "$go_mod" | awk -v module="$module" '
        $1 == module { print $2 }
        $1 == "require" && $2 == module { print $3 }
    '
}

# Print the replacement targets of a go.mod file that are module versions (not directories) as MODULE@VERSION lines.
replacement_targets() {
    go mod edit -fmt -print "$1" | awk '
        $1 == "replace" && $2 == "(" { in_block = 1; next }
        in_block && $1 == ")" { in_block = 0; next }
        in_block && $2 == "=>" && NF == 4 { print $3 "@" $4; next }
        !in_block && $1 == "replace" && $3 == "=>" && NF == 5 { print $4 "@" $5 }
    '
}

# Print the module cache directory of MODULE@VERSION, downloading the module when needed.
module_directory() {
    local module_version=$1 dir
    dir=$(cd "$scratch_dir" && go mod download -json "$module_version" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
    if [[ -z "$dir" || ! -d "$dir" ]]; then
        printf 'go mod download printed no directory for %s\n' "$module_version" >&2
        return 1
    fi
    printf '%s\n' "$dir"
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

# Print a short digest of the given strings, for builds that use no source files of this repository.
value_digest() {
    {
        printf '%s\n' "$@"
        go env GOVERSION
    } | sha256sum | cut -c1-16
}

# NOTE: superseded build directories (an older digest or version) are never removed. Delete them, or the whole
# cache, to reclaim disk space.
#
# Run "BUILD_FUNCTION [ARGS...] TMPDIR" to fill a new temporary directory, then rename it to FINAL_DIR. FINAL_DIR therefore
# exists only after a successful build, and its existence is what marks the build complete. Because the build
# function runs as an `if` condition, where `set -e` does not apply, each build function returns its own status.
build_into() {
    local description=$1 final_dir=$2 build_function=$3
    shift 3
    pending_dir=$(mktemp -d "$cache/.building.XXXXXX")
    if ! "$build_function" "$@" "$pending_dir"; then
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

# Build the lab program NAME from the module in SOURCE_DIR into OUT_DIR/NAME.
build_lab_program() {
    local name=$1 source_dir=$2 out_dir=$3
    (cd "$source_dir" && go build -trimpath -ldflags "-s -w" -o "$out_dir/$name" .)
}

# Build the lab program NAME from lab/NAME unless the cache has it for the module's current source, and link it.
lab_program() {
    local name=$1 source_dir=$repo_dir/lab/$1 digest build_dir
    digest=$(source_digest "$source_dir" "-trimpath -s -w")
    build_dir=$cache/$name-$digest
    if [[ -d "$build_dir" ]]; then
        log "$name is up to date ($build_dir)"
    else
        log "building $name from lab/$name"
        build_into "building lab/$name" "$build_dir" build_lab_program "$name" "$source_dir"
    fi
    link_into_bin "$build_dir/$name" "$name"
}

# Run COMMAND at low CPU priority and log how long STEP took. Each step of the Kubernetes group keeps all cores busy
# for minutes, and niceness 15 keeps a shared machine responsive (it changes nothing on an idle one).
timed_nice() {
    local step=$1 start=$SECONDS elapsed
    shift
    nice -n 15 "$@" || return
    elapsed=$((SECONDS - start))
    log "$step took $((elapsed / 60)) min $((elapsed % 60)) s"
}

build_kubernetes_binaries() {
    local out_dir=$1 command
    for command in "${KUBERNETES_COMMANDS[@]}"; do
        log "building $command $KUBERNETES_VERSION"
        (cd "$k8s_wrapper_dir" && timed_nice "building $command" go build -trimpath -ldflags "$kubernetes_ldflags" \
            -o "$out_dir/$command" "$KUBERNETES_MODULE/cmd/$command") || return
    done
}

build_etcd() {
    local out_dir=$1
    # The main package is the module root, so without -o the binary would be named v3.
    (cd "$etcd_wrapper_dir" && timed_nice "building etcd" go build -trimpath -ldflags "-s -w" \
        -o "$out_dir/etcd" "$ETCD_MODULE")
}

build_kwok() {
    local out_dir=$1
    (cd "$kwok_wrapper_dir" && timed_nice "building kwok" go build -trimpath -ldflags "$kwok_ldflags" \
        -o "$out_dir/kwok" "$KWOK_MODULE/cmd/kwok")
}

# Build the Kubernetes provider from a writable copy of its module in the cache. The copy is needed because the
# main package embeds schema-embed.json and terraform-mapping-embed.json, which upstream writes with `go generate`
# before building and which the module zip lacks, and because the module cache is read-only.
build_kubernetes_provider() {
    local out_dir=$1 module_dir main_dir
    module_dir=$(module_directory "$KUBERNETES_PROVIDER_MODULE@$KUBERNETES_PROVIDER_MODULE_VERSION") || return
    source_copy_dir=$(mktemp -d "$cache/.kubernetes-provider-source.XXXXXX")
    main_dir=$source_copy_dir/cmd/pulumi-resource-kubernetes
    cp -R -- "$module_dir/." "$source_copy_dir" || return
    chmod -R u+w -- "$source_copy_dir" || return

    # Upstream replaces the SDK module with ../sdk, a directory of its repository that the module zip does not have.
    (cd "$source_copy_dir" && go mod edit -dropreplace="$KUBERNETES_PROVIDER_SDK_MODULE" \
        -require="$KUBERNETES_PROVIDER_SDK_MODULE@$KUBERNETES_PROVIDER_SDK_VERSION") || return

    # generate.go stamps $VERSION into the schema that the provider reports to the engine. -mod=mod lets the go
    # command add the go.sum lines of the SDK module, which upstream's go.sum lacks because of the dropped replace.
    # -buildvcs=false because the copy may sit inside some other repository's work tree.
    log "generating the embedded schema of the Kubernetes provider (version $KUBERNETES_PROVIDER_VERSION)"
    (cd "$main_dir" && VERSION=$KUBERNETES_PROVIDER_VERSION timed_nice "generating the schema" \
        go run -mod=mod -buildvcs=false generate.go) || return
    log "compiling pulumi-resource-kubernetes"
    (cd "$source_copy_dir" && timed_nice "compiling pulumi-resource-kubernetes" go build -mod=mod -buildvcs=false \
        -trimpath -ldflags "$provider_ldflags" -o "$out_dir/pulumi-resource-kubernetes" \
        ./cmd/pulumi-resource-kubernetes) || return

    rm -rf -- "$source_copy_dir"
    source_copy_dir=
}

# Install the Kubernetes provider BINARY into the tests' PULUMI_HOME, unless that exact file is installed already.
install_kubernetes_provider() {
    local binary=$1
    local plugin_dir=$cache/pulumi-home/plugins/resource-kubernetes-v$KUBERNETES_PROVIDER_VERSION
    # The CLI creates a sibling .partial file while installing and removes it when done.
    if [[ ! -e "$plugin_dir.partial" ]] && cmp -s -- "$binary" "$plugin_dir/pulumi-resource-kubernetes"; then
        log "Kubernetes provider $KUBERNETES_PROVIDER_VERSION is installed ($plugin_dir)"
        return 0
    fi
    log "installing the Kubernetes provider as plugin resource kubernetes v$KUBERNETES_PROVIDER_VERSION into" \
        "$cache/pulumi-home"
    PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME="$cache/pulumi-home" "$bin_dir/pulumi" plugin install \
        resource kubernetes "v$KUBERNETES_PROVIDER_VERSION" --file "$binary" --reinstall ||
        die "pulumi plugin install of $binary failed; see the output above"
    cmp -s -- "$binary" "$plugin_dir/pulumi-resource-kubernetes" ||
        die "pulumi plugin install did not put $binary at $plugin_dir/pulumi-resource-kubernetes"
}

# Fail unless "BINARY ARGS" prints a line that contains EXPECTED.
check_reported_version() {
    local expected=$1 binary=$2 output
    shift 2
    output=$("$binary" "$@" 2>&1) || die "$binary $* failed: $output"
    grep -qF -- "$expected" <<<"$output" || die "$binary $* printed '$output', expected it to contain '$expected'"
}

# Build the Kubernetes group (only with --with-kubernetes), link its servers into bin and install the provider.
build_kubernetes_group() {
    local module_version k8s_digest k8s_dir etcd_digest etcd_dir kwok_digest kwok_dir provider_digest provider_dir
    local command major minor package

    # Runs without --with-kubernetes, such as `make test`, must not wait up to an hour for this group, so it runs
    # under a lock of its own. Everything it writes has names of its own.
    exec 9>&-
    exec 8>"$cache/.lock-kubernetes"
    if ! flock -n 8; then
        log "waiting for another build-toolchain.sh run to finish the Kubernetes group (lock $cache/.lock-kubernetes)"
        flock 8
    fi

    [[ "$KUBERNETES_VERSION" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] ||
        die "KUBERNETES_VERSION $KUBERNETES_VERSION is not a release version such as v1.36.3"
    major=${BASH_REMATCH[1]}
    minor=${BASH_REMATCH[2]}
    # Linker flags of the group, global because the build functions read them. For Kubernetes they set the variables
    # that upstream's hack/lib/version.sh sets. Without them the servers report v0.0.0-master+$Format:%H$, and Helm
    # rejects charts with a kubeVersion constraint. The commit and build date stay unset because the module proxy
    # does not always report the commit.
    kubernetes_ldflags="-s -w"
    for package in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        kubernetes_ldflags+=" -X $package.gitVersion=$KUBERNETES_VERSION -X $package.gitMajor=$major"
        kubernetes_ldflags+=" -X $package.gitMinor=$minor -X $package.gitTreeState=clean"
    done
    kwok_ldflags="-s -w -X $KWOK_MODULE/pkg/consts.Version=$KWOK_VERSION"
    provider_ldflags="-s -w -X $KUBERNETES_PROVIDER_MODULE/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION"

    log "checking the wrapper modules of the Kubernetes group"
    "$k8s_wrapper_dir/generate-go-mod.sh" --check "$KUBERNETES_VERSION" ||
        die "tools/k8s-bin/go.mod does not match Kubernetes $KUBERNETES_VERSION;" \
            "run tools/k8s-bin/generate-go-mod.sh $KUBERNETES_VERSION"
    [[ "$(required_version "$etcd_wrapper_dir/go.mod" "$ETCD_MODULE")" == "$ETCD_VERSION" ]] ||
        die "tools/etcd-bin/go.mod must require $ETCD_MODULE $ETCD_VERSION;" \
            "run: (cd tools/etcd-bin && go get -tool $ETCD_MODULE@$ETCD_VERSION && go mod tidy)"
    [[ "$(required_version "$kwok_wrapper_dir/go.mod" "$KWOK_MODULE")" == "$KWOK_VERSION" ]] ||
        die "tools/kwok-bin/go.mod must require $KWOK_MODULE $KWOK_VERSION;" \
            "run: (cd tools/kwok-bin && go get -tool $KWOK_MODULE/cmd/kwok@$KWOK_VERSION && go mod tidy)"

    log "checking that the Go module proxy serves the Kubernetes group's module versions"
    required_modules=(
        "$KUBERNETES_MODULE@$KUBERNETES_VERSION"
        "$ETCD_MODULE@$ETCD_VERSION"
        "$KWOK_MODULE@$KWOK_VERSION"
        "$KUBERNETES_PROVIDER_MODULE@$KUBERNETES_PROVIDER_MODULE_VERSION"
        "$KUBERNETES_PROVIDER_SDK_MODULE@$KUBERNETES_PROVIDER_SDK_VERSION"
    )
    mapfile -t -O "${#required_modules[@]}" required_modules < <(replacement_targets "$k8s_wrapper_dir/go.mod")
    for module_version in "${required_modules[@]}"; do
        check_module_served "$module_version"
    done

    # Kubernetes servers.
    k8s_digest=$(source_digest "$k8s_wrapper_dir" "$KUBERNETES_VERSION" "-trimpath $kubernetes_ldflags")
    k8s_dir=$cache/kubernetes-$KUBERNETES_VERSION-$k8s_digest
    if [[ -d "$k8s_dir" ]]; then
        log "Kubernetes $KUBERNETES_VERSION servers are up to date ($k8s_dir)"
    else
        log "building Kubernetes $KUBERNETES_VERSION servers (about 16 min on 2 cores with an empty Go build cache)"
        build_into "building the Kubernetes $KUBERNETES_VERSION servers" "$k8s_dir" build_kubernetes_binaries
    fi
    for command in "${KUBERNETES_COMMANDS[@]}"; do
        link_into_bin "$k8s_dir/$command" "$command"
        check_reported_version "Kubernetes $KUBERNETES_VERSION" "$bin_dir/$command" --version
    done

    # etcd.
    etcd_digest=$(source_digest "$etcd_wrapper_dir" "$ETCD_VERSION" "-trimpath -s -w")
    etcd_dir=$cache/etcd-$ETCD_VERSION-$etcd_digest
    if [[ -d "$etcd_dir" ]]; then
        log "etcd $ETCD_VERSION is up to date ($etcd_dir)"
    else
        log "building etcd $ETCD_VERSION (about 1 min on 2 cores)"
        build_into "building etcd $ETCD_VERSION" "$etcd_dir" build_etcd
    fi
    link_into_bin "$etcd_dir/etcd" etcd
    check_reported_version "etcd Version: ${ETCD_VERSION#v}" "$bin_dir/etcd" --version

    # kwok.
    kwok_digest=$(source_digest "$kwok_wrapper_dir" "$KWOK_VERSION" "-trimpath $kwok_ldflags")
    kwok_dir=$cache/kwok-$KWOK_VERSION-$kwok_digest
    if [[ -d "$kwok_dir" ]]; then
        log "kwok $KWOK_VERSION is up to date ($kwok_dir)"
    else
        log "building kwok $KWOK_VERSION (about 4 min on 2 cores)"
        build_into "building kwok $KWOK_VERSION" "$kwok_dir" build_kwok
    fi
    link_into_bin "$kwok_dir/kwok" kwok
    check_reported_version "kwok version $KWOK_VERSION" "$bin_dir/kwok" --version

    # Kubernetes provider. It goes into pulumi-home only, not into bin (see the header).
    provider_digest=$(value_digest "$KUBERNETES_PROVIDER_MODULE@$KUBERNETES_PROVIDER_MODULE_VERSION" \
        "$KUBERNETES_PROVIDER_SDK_MODULE@$KUBERNETES_PROVIDER_SDK_VERSION" "-mod=mod -trimpath $provider_ldflags")
    provider_dir=$cache/kubernetes-provider-$KUBERNETES_PROVIDER_VERSION-$provider_digest
    if [[ -d "$provider_dir" ]]; then
        log "Kubernetes provider $KUBERNETES_PROVIDER_VERSION is up to date ($provider_dir)"
    else
        log "building the Kubernetes provider $KUBERNETES_PROVIDER_VERSION from" \
            "$KUBERNETES_PROVIDER_MODULE@$KUBERNETES_PROVIDER_MODULE_VERSION (about 25 min on 2 cores)"
        build_into "building the Kubernetes provider" "$provider_dir" build_kubernetes_provider
    fi
    # NOTE: the provider's own version stamp is not checked here. The provider reports it only over gRPC to an
    # engine, and `go version -m` omits -ldflags from binaries built with -trimpath.
    install_kubernetes_provider "$provider_dir/pulumi-resource-kubernetes"
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

with_kubernetes=false
case ${TKG_GPU_WITH_KUBERNETES:-0} in
    1) with_kubernetes=true ;;
    0) ;;
    *) die "invalid TKG_GPU_WITH_KUBERNETES value '$TKG_GPU_WITH_KUBERNETES': expected 1 or 0" ;;
esac
while [[ $# -gt 0 ]]; do
    case $1 in
        --with-kubernetes) with_kubernetes=true ;;
        -h | --help)
            usage >&3
            exit 0
            ;;
        *)
            usage
            die "unknown argument '$1'; see the usage above"
            ;;
    esac
    shift
done
readonly with_kubernetes

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
# temporary directory of the build in progress, and source_copy_dir the writable module copy of the provider build
# in progress. All are removed when the script exits, also on failure.
scratch_dir=$(mktemp -d)
pending_dir=
source_copy_dir=
trap 'rm -rf -- "$scratch_dir"
    if [[ -n "$pending_dir" ]]; then rm -rf -- "$pending_dir"; fi
    if [[ -n "$source_copy_dir" ]]; then rm -rf -- "$source_copy_dir"; fi' EXIT
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
for lab_dir in "$vcsim_dir" "$oci_registry_dir"; do
    mapfile -t -O "${#required_modules[@]}" required_modules < <(direct_requirements "$lab_dir/go.mod")
done
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

# The lab's vCenter simulator and OCI registry.
lab_program vcsim-gpu
lab_program oci-registry

if $with_kubernetes; then
    build_kubernetes_group
fi

printf '%s\n' "$bin_dir" >&3

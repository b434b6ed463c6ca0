#!/usr/bin/env bash
# Write go.mod and go.sum of this wrapper module for one Kubernetes release, or check that they match it.
#
# Usage: tools/k8s-bin/generate-go-mod.sh [--check] KUBERNETES_VERSION     (for example v1.36.3)
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at the placeholder version
# v0.0.0 and replaces them with directories inside its own repository, which do not exist when it is a dependency.
# The staging modules are published as v0.X.Y for Kubernetes v1.X.Y, so this wrapper replaces each staging module
# that k8s.io/kubernetes requires with the same module at v0.X.Y. The list changes between releases, so it is read
# from the release's own go.mod. Staging modules that the release replaces but does not require (such as
# k8s.io/sample-cli-plugin) get no replace, because the module proxy need not serve them.
#
# With --check, nothing is written: the exit status is 0 when go.mod requires KUBERNETES_VERSION and carries exactly
# the expected replaces, and 1 otherwise (the differences go to stderr).
set -euo pipefail

readonly KUBERNETES_MODULE=k8s.io/kubernetes
readonly COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler)

die() {
    printf 'generate-go-mod.sh: error: %s\n' "$*" >&2
    exit 1
}

check_only=false
if [[ "${1-}" == --check ]]; then
    check_only=true
    shift
fi
[[ $# -eq 1 ]] || die "usage: generate-go-mod.sh [--check] KUBERNETES_VERSION (for example v1.36.3)"
readonly kubernetes_version=$1
[[ "$kubernetes_version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] ||
    die "invalid Kubernetes version '$kubernetes_version': expected a release such as v1.36.3"
readonly staging_version=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}

wrapper_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly wrapper_dir

# Print the expected replace directives, one "MODULE=MODULE@VERSION" argument of `go mod edit -replace` a line.
expected_replaces() {
    local scratch_dir upstream_go_mod
    # Run outside any module, so that the wrapper's own go.mod does not take part.
    scratch_dir=$(mktemp -d)
    upstream_go_mod=$(cd "$scratch_dir" && go mod download -json "$KUBERNETES_MODULE@$kubernetes_version" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    rmdir -- "$scratch_dir"
    [[ -f "$upstream_go_mod" ]] ||
        die "go mod download printed no go.mod path for $KUBERNETES_MODULE@$kubernetes_version"

    go mod edit -fmt -print "$upstream_go_mod" | awk -v version="$staging_version" '
        $1 == "require" && $2 == "(" { block = "require"; next }
        $1 == "replace" && $2 == "(" { block = "replace"; next }
        block != "" && $1 == ")" { block = ""; next }
        block == "require" { required[$1] = 1; next }
        block == "replace" && $2 == "=>" && $3 ~ /^\.\/staging\// { staging[$1] = 1; next }
        $1 == "require" { required[$2] = 1; next }
        $1 == "replace" && $3 == "=>" && $4 ~ /^\.\/staging\// { staging[$2] = 1; next }
        END {
            for (module in staging) {
                if (module in required) {
                    print module "=" module "@" version
                }
            }
        }
    ' | LC_ALL=C sort
}

# Print the wrapper's replace directives in the same form as expected_replaces.
current_replaces() {
    go mod edit -fmt -print "$wrapper_dir/go.mod" | awk '
        $1 == "replace" && $2 == "(" { in_block = 1; next }
        in_block && $1 == ")" { in_block = 0; next }
        in_block && $2 == "=>" && NF == 4 { print $1 "=" $3 "@" $4; next }
        !in_block && $1 == "replace" && $3 == "=>" && NF == 5 { print $2 "=" $4 "@" $5 }
    ' | LC_ALL=C sort
}

mapfile -t replaces < <(expected_replaces)
[[ ${#replaces[@]} -gt 0 ]] || die "found no staging modules in the go.mod of $KUBERNETES_MODULE@$kubernetes_version"

if $check_only; then
    [[ -f "$wrapper_dir/go.mod" ]] ||
        die "$wrapper_dir/go.mod does not exist; run generate-go-mod.sh $kubernetes_version"
    required_version=$(go mod edit -fmt -print "$wrapper_dir/go.mod" | awk -v module="$KUBERNETES_MODULE" '
        $1 == module { print $2 }
        $1 == "require" && $2 == module { print $3 }
    ')
    status=0
    if [[ "$required_version" != "$kubernetes_version" ]]; then
        printf '%s/go.mod requires %s %s, expected %s\n' "$wrapper_dir" "$KUBERNETES_MODULE" \
            "${required_version:-(nothing)}" "$kubernetes_version" >&2
        status=1
    fi
    if ! replace_diff=$(diff <(printf '%s\n' "${replaces[@]}") <(current_replaces)); then
        printf '%s/go.mod has other replaces than expected (< expected, > present):\n%s\n' \
            "$wrapper_dir" "$replace_diff" >&2
        status=1
    fi
    exit "$status"
fi

cd "$wrapper_dir"
rm -f go.sum
{
    printf '// Written by generate-go-mod.sh %s. Rerun that script instead of editing the replace block.\n' \
        "$kubernetes_version"
    printf 'module tkg-gpu/tools/k8s-bin\n\ngo 1.26.0\n\nrequire %s %s\n\nreplace (\n' \
        "$KUBERNETES_MODULE" "$kubernetes_version"
    for replace in "${replaces[@]}"; do
        module=${replace%%=*}
        printf '\t%s => %s %s\n' "$module" "$module" "$staging_version"
    done
    printf ')\n'
} >go.mod
tool_packages=()
for command in "${COMMANDS[@]}"; do
    tool_packages+=("$KUBERNETES_MODULE/cmd/$command@$kubernetes_version")
done
go get -tool "${tool_packages[@]}"
go mod tidy
printf 'wrote %s/go.mod with %d replaces of staging modules at %s\n' "$wrapper_dir" "${#replaces[@]}" \
    "$staging_version" >&2

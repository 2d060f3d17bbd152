#!/usr/bin/env bash
# Installs the civitai-meta binary for this runner, for the GitHub Action (action.yml).
# The release asset and SHA256SUMS come from the same release; the binary is installed only if
# its SHA-256 matches the one SHA256SUMS lists for it. Inputs arrive as environment variables:
#   CM_VERSION     version to install ("0.2.0" or "v0.2.0"); empty: the action's tag, else the latest release
#   CM_BINARY      a binary already on disk to use instead of downloading (checked to run)
#   CM_REPOSITORY  owner/name whose releases hold the binaries (the action's own repository)
#   CM_ACTION_REF  the ref the action was used at (a tag like v0.2.0 pins the version)
#   CM_SERVER_URL  https://github.com (a test points it at a local server)
# plus the runner's RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP, GITHUB_PATH and GITHUB_OUTPUT.
set -euo pipefail

# A workflow command's message with GitHub's escapes: %, CR and LF are markup there, and an input
# holding a newline would otherwise start a command of its own ("::error …", "::add-mask::…").
msg() {
  local s=${*//%/%25}
  s=${s//$'\r'/%0D}
  printf '%s' "${s//$'\n'/%0A}"
}

fail() {
  echo "::error title=civitai-meta install::$(msg "$*")"
  exit 1
}

install_dir="${RUNNER_TEMP:?}/civitai-meta/bin"
exe=""
[ "${RUNNER_OS:-}" = "Windows" ] && exe=".exe"

if [ -n "${CM_BINARY:-}" ]; then
  [ -f "$CM_BINARY" ] || fail "binary input: $CM_BINARY does not exist"
  mkdir -p "$install_dir"
  cp "$CM_BINARY" "$install_dir/civitai-meta$exe"
  chmod +x "$install_dir/civitai-meta$exe"
else
  # Which asset fits this runner: a Linux job may run in an Alpine container, hence the musl check.
  # The system's own ldd says which C library it is (a musl loader alone proves nothing: Debian
  # installs one beside glibc); musl's ldd exits 1 on --version, hence the "|| true".
  libc=""
  if [ "${RUNNER_OS:-}" = "Linux" ] && { ldd --version 2>&1 || true; } | grep -qi musl; then
    libc="-musl"
  fi
  case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
    Linux/X64) asset="civitai-meta-linux-x64$libc" ;;
    Linux/ARM64) asset="civitai-meta-linux-arm64$libc" ;;
    macOS/X64) asset="civitai-meta-darwin-x64" ;;
    macOS/ARM64) asset="civitai-meta-darwin-arm64" ;;
    Windows/X64) asset="civitai-meta-windows-x64.exe" ;;
    *) fail "civitai-meta has no binary for ${RUNNER_OS:-?} ${RUNNER_ARCH:-?} (there are Linux x64/arm64, macOS x64/arm64 and Windows x64)" ;;
  esac

  base="${CM_SERVER_URL:-https://github.com}/${CM_REPOSITORY:?}/releases"
  version="${CM_VERSION:-}"
  if [ -z "$version" ] && [[ "${CM_ACTION_REF:-}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]]; then
    version="$CM_ACTION_REF"
  fi
  if [ -z "$version" ]; then
    # /releases/latest redirects to /releases/tag/<tag>: resolve it once so the binary and its
    # checksum come from the same release.
    latest=$(curl -fsSL --retry 3 -o /dev/null -w '%{url_effective}' "$base/latest") || fail "cannot find the latest release at $base/latest"
    version="${latest##*/}"
    [[ "$version" =~ ^v[0-9] ]] || fail "cannot find the latest release at $base/latest (got $latest)"
  fi
  tag="v${version#v}"

  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "Downloading $asset from release $tag of $CM_REPOSITORY"
  curl -fsSL --retry 3 -o "$work/SHA256SUMS" "$base/download/$tag/SHA256SUMS" || fail "cannot download SHA256SUMS of release $tag ($base/download/$tag/SHA256SUMS)"
  curl -fsSL --retry 3 -o "$work/$asset" "$base/download/$tag/$asset" || fail "cannot download $asset of release $tag"

  expected=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1; exit }' "$work/SHA256SUMS")
  [ -n "$expected" ] || fail "SHA256SUMS of release $tag lists no $asset"
  if command -v sha256sum >/dev/null 2>&1; then
    actual=$(sha256sum "$work/$asset" | awk '{ print $1 }')
  else
    actual=$(shasum -a 256 "$work/$asset" | awk '{ print $1 }')
  fi
  [ "$actual" = "$expected" ] || fail "$asset of release $tag has SHA-256 $actual, but SHA256SUMS says $expected: not installed"
  mkdir -p "$install_dir"
  mv "$work/$asset" "$install_dir/civitai-meta$exe"
  chmod +x "$install_dir/civitai-meta$exe"
  echo "SHA-256 verified: $actual"
fi

bin="$install_dir/civitai-meta$exe"
installed=$("$bin" --version) || fail "$bin does not run"
echo "$install_dir" >>"$GITHUB_PATH"
{
  echo "path=$bin"
  echo "version=$installed"
} >>"$GITHUB_OUTPUT"
echo "civitai-meta $installed installed at $bin"

#!/usr/bin/env bash
# Runs `civitai-meta scan` for the GitHub Action (action.yml): writes the JSON inventory, an extra
# report in the chosen format, the job's step summary, and the step outputs. It always exits 0 once
# the scan ran, recording the scan's exit code, so the summary and the artifact come first; the
# action's last step fails the job with that code. Inputs arrive as environment variables:
#   CM_BIN        the civitai-meta binary (from the install step)
#   CM_PATHS      files or folders, one per line
#   CM_FORMAT     md, csv or json: the extra report beside inventory.json
#   CM_FAIL_ON    statuses that fail the run (scan --fail-on)
#   CM_PREVIOUS   an earlier inventory to compare against (scan --previous)
#   CM_OFFLINE    "true": scan --offline
#   CM_ARGS       more scan arguments, one per line
#   CM_SUMMARY    "true": write the Markdown report to the step summary
#   CM_OUTPUT_DIR where to write inventory.json and the report
# The API key, if any, is in CIVITAI_API_KEY, which the tool reads itself: it is never an argument.
set -euo pipefail

# A workflow command's message with GitHub's escapes: %, CR and LF are markup there, and an input
# holding a newline would otherwise start a command of its own ("::error …", "::add-mask::…").
msg() {
  local s=${*//%/%25}
  s=${s//$'\r'/%0D}
  printf '%s' "${s//$'\n'/%0A}"
}

fail() {
  echo "::error title=civitai-meta scan::$(msg "$*")"
  exit 1
}

bin="${CM_BIN:?}"
out="${CM_OUTPUT_DIR:?}"
mkdir -p "$out"
inventory="$out/inventory.json"
# The scan writes a fresh name, moved to inventory.json only once written: in an output-dir that
# outlives the job, a scan that stops before writing must not leave the last run's inventory.json
# to be summarised and uploaded as this one's (nor remove it: it may be this run's --previous).
fresh="$out/.inventory.new.json"
rm -f "$fresh"

args=(scan)
while IFS= read -r line || [ -n "$line" ]; do
  [ -n "${line//[[:space:]]/}" ] && args+=("$line")
done <<<"${CM_PATHS:-}"
[ "${#args[@]}" -gt 1 ] || fail "the paths input is empty: give the folders to scan, one per line"
args+=(--format json -o "$fresh")
[ -n "${CM_FAIL_ON:-}" ] && args+=(--fail-on "$CM_FAIL_ON")
if [ -n "${CM_PREVIOUS:-}" ]; then
  if [ -f "$CM_PREVIOUS" ]; then
    args+=(--previous "$CM_PREVIOUS")
  else
    echo "::warning title=civitai-meta scan::$(msg "previous inventory $CM_PREVIOUS does not exist (first run?): scanning without a comparison")"
  fi
fi
[ "${CM_OFFLINE:-false}" = "true" ] && args+=(--offline)
while IFS= read -r line || [ -n "$line" ]; do
  [ -n "${line//[[:space:]]/}" ] && args+=("$line")
done <<<"${CM_ARGS:-}"

case "${CM_FORMAT:-md}" in
  md | csv | json | junit) format="${CM_FORMAT:-md}" ;;
  *) fail "format input: \"$CM_FORMAT\" is not one of md, csv, json, junit" ;;
esac

# The command line as the log shows it: a key given in `args` (--api-key VALUE or --api-key=VALUE)
# and the password of a URL (--cache-url redis://:password@host) are *** there. The step log is
# kept and often public; GitHub masks only the values it knows to be secrets.
shown=()
hide_next=false
for a in "${args[@]}"; do
  if [ "$hide_next" = true ]; then
    shown+=("***")
    hide_next=false
  elif [ "$a" = "--api-key" ]; then
    shown+=("$a")
    hide_next=true
  elif [[ $a == --api-key=* ]]; then
    shown+=("--api-key=***")
  elif [[ $a =~ ^(.*://[^:@/]*:)[^@/]*@(.*)$ ]]; then
    shown+=("${BASH_REMATCH[1]}***@${BASH_REMATCH[2]}")
  else
    shown+=("$a")
  fi
done
echo "civitai-meta ${shown[*]}"
# The action writes the step summary itself below (the whole report, cut to fit, or nothing when
# the summary input is false), so scan must not append its own as well: scan writes it to a file of
# ours, from which only what the report cannot say is taken (what --fail-on matched).
scan_summary="$out/.scan-summary.md"
rm -f "$scan_summary"
set +e
GITHUB_STEP_SUMMARY="$scan_summary" "$bin" "${args[@]}"
code=$?
set -e
matched=""
if [ -f "$scan_summary" ]; then
  matched=$(grep -m1 -e '^- \*\*--fail-on matched:\*\*' "$scan_summary" || true)
  matched=${matched#- }
  rm -f "$scan_summary"
fi

wrote=false
if [ -f "$fresh" ]; then
  mv -f "$fresh" "$inventory"
  wrote=true
fi

report=""
if [ "$wrote" = true ]; then
  if [ "$format" = "json" ]; then
    report="$inventory"
  else
    # JUnit XML for the CI's test reports (a test case per file), as scan -o inventory.xml writes it.
    ext=$format
    [ "$format" = "junit" ] && ext=xml
    report="$out/inventory.$ext"
    "$bin" report "$inventory" --format "$format" -o "$report" -q || fail "could not render $report from $inventory"
  fi
fi

if [ "${CM_SUMMARY:-true}" = "true" ] && [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  if [ "$wrote" = true ]; then
    md="$out/summary.md"
    "$bin" report "$inventory" --format md -o "$md" -q || fail "could not render the summary from $inventory"
    # What --fail-on matched (the reason the job fails) goes under the report's title, where it is seen first.
    if [ -n "$matched" ]; then
      MATCHED="$matched" awk 'NR == 1 { print; print ""; print ENVIRON["MATCHED"]; next } { print }' "$md" >"$md.tmp"
      mv -f "$md.tmp" "$md"
    fi
    # GitHub takes at most 1 MiB of summary per step: past that, keep the summary table and say where the rest is.
    if [ "$(wc -c <"$md")" -le 1000000 ]; then
      cat "$md" >>"$GITHUB_STEP_SUMMARY"
    else
      awk '/^## / { exit } { print }' "$md" | head -c 900000 >>"$GITHUB_STEP_SUMMARY"
      printf '\n_The full report is too large for a step summary: it is in the inventory artifact._\n' >>"$GITHUB_STEP_SUMMARY"
    fi
    rm -f "$md"
  else
    printf '## civitai-meta scan\n\nThe scan stopped (exit %s) before writing an inventory: see the step log.\n' "$code" >>"$GITHUB_STEP_SUMMARY"
  fi
fi

{
  echo "exit-code=$code"
  echo "inventory=$([ "$wrote" = true ] && echo "$inventory")"
  echo "report=$report"
  echo "artifact-paths<<CIVITAI_META_EOF"
  [ "$wrote" = true ] && echo "$inventory"
  [ -n "$report" ] && [ "$report" != "$inventory" ] && echo "$report"
  echo "CIVITAI_META_EOF"
} >>"$GITHUB_OUTPUT"
echo "scan exit code: $code"

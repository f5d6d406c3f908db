#!/usr/bin/env bash
# Reconcile a Helm release to the merged spec that `deployd agent --exec` hands over.
#
#   deployd agent --server URL --license-file F --trust-key K --exec examples/helm-reconcile.sh
#
# deployd sets DEPLOYD_SPEC_FILE to the merged spec {"metadata", "chart", "values"} (JSON, also
# on stdin). The chart is {url, name, version} (a Helm repository, or an oci:// registry) or
# {path} (a chart directory or archive). Exit status 0 tells deployd the release is applied;
# anything else makes it retry with backoff and keep reporting the previous release.
#
# Environment:
#   HELM             helm binary (default: helm on PATH)
#   HELM_RELEASE     Helm release name (default: the chart's name)
#   HELM_NAMESPACE   namespace (default: default)
#   HELM_EXTRA_ARGS  more arguments for `helm upgrade`, split on spaces (e.g. "--wait --timeout 10m")
set -euo pipefail

helm_bin="${HELM:-helm}"
if ! command -v "$helm_bin" >/dev/null 2>&1; then
    echo "helm-reconcile: '$helm_bin' is not on PATH; install helm or set HELM=/path/to/helm" >&2
    exit 127
fi
spec_file="${DEPLOYD_SPEC_FILE:-}"
if [[ -z "$spec_file" || ! -r "$spec_file" ]]; then
    echo "helm-reconcile: DEPLOYD_SPEC_FILE is not a readable file; run me from deployd agent --exec" >&2
    exit 2
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
chmod 700 "$workdir"

# Split the spec: the values into their own file (JSON is valid YAML for helm), the chart's
# coordinates NUL-separated: chart reference, repository URL (or empty), version (or empty).
python3 - "$spec_file" "$workdir/values.json" "$workdir/chart" <<'PY'
import json
import sys

spec_path, values_path, chart_path = sys.argv[1:4]
with open(spec_path, encoding="utf-8") as f:
    spec = json.load(f)
chart = spec.get("chart") or {}
fields = {k: chart.get(k) for k in ("url", "name", "version", "path")}
for key, value in fields.items():
    if value is not None and (not isinstance(value, str) or "\0" in value or "\n" in value):
        sys.exit(f"helm-reconcile: chart.{key} must be a one-line string")
if fields["path"]:
    reference, repository = fields["path"], ""
elif fields["url"] and fields["name"]:
    if fields["url"].startswith("oci://"):
        reference, repository = fields["url"].rstrip("/") + "/" + fields["name"], ""
    else:
        reference, repository = fields["name"], fields["url"]
else:
    sys.exit("helm-reconcile: the chart needs either path, or url and name")
with open(values_path, "w", encoding="utf-8") as f:
    json.dump(spec.get("values") or {}, f)
with open(chart_path, "w", encoding="utf-8") as f:
    f.write("\0".join([reference, repository, fields["version"] or "", fields["name"] or ""]))
PY

mapfile -d '' -t chart < "$workdir/chart"
reference="${chart[0]}"
repository="${chart[1]:-}"
version="${chart[2]:-}"
name="${chart[3]:-}"

args=(upgrade --install "${HELM_RELEASE:-${name:-deployd}}" "$reference")
[[ -n "$repository" ]] && args+=(--repo "$repository")
[[ -n "$version" ]] && args+=(--version "$version")
args+=(--namespace "${HELM_NAMESPACE:-default}" --create-namespace --values "$workdir/values.json")
# shellcheck disable=SC2206  # splitting HELM_EXTRA_ARGS on spaces is the point
args+=(${HELM_EXTRA_ARGS:-})

echo "helm-reconcile: helm upgrade --install ${args[2]} $reference${version:+ --version $version}" >&2
"$helm_bin" "${args[@]}"

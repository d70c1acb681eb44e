# Kubernetes, for internal/kubetest (and the packages testing against it:
# ingress/k8singress, faas/kubefaas): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kubelet built once from scratch
# modules under $CACHE into $BIN, keyed by version; containerd (brought by
# docker.io, installed by .ci/run) and Debian's CNI plugins for the node.
# Nothing is started here: each test package starts its own cluster on free
# loopback ports over temporary directories (../shared/TESTBED.md's recipe).
KUBE_VERSION=v1.37.2
KUBE_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.16

if [ ! -x "$BIN/etcd-$ETCD_VERSION" ]; then
  step "building etcd $ETCD_VERSION"
  mkdir -p "$CACHE/build-etcd"
  (
    cd "$CACHE/build-etcd"
    [ -f go.mod ] || go mod init glimpse-ci/build-etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -o "$BIN/etcd-$ETCD_VERSION.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$BIN/etcd-$ETCD_VERSION.tmp" "$BIN/etcd-$ETCD_VERSION"
fi
export GLIMPSE_ETCD_BIN="$BIN/etcd-$ETCD_VERSION"

KUBE_CMDS="kube-apiserver kube-controller-manager kube-scheduler kubelet"
kube_missing=""
for c in $KUBE_CMDS; do
  [ -x "$BIN/$c-$KUBE_VERSION" ] || kube_missing="$kube_missing $c"
done
if [ -n "$kube_missing" ]; then
  step "building$kube_missing $KUBE_VERSION (minutes on a cold module cache)"
  mkdir -p "$CACHE/build-kubernetes"
  (
    cd "$CACHE/build-kubernetes"
    # k8s.io/kubernetes requires its staging modules at v0.0.0: point each
    # at its published version (sample-cli-plugin and sample-controller are
    # left out: the proxy refuses them and no command here needs them).
    {
      echo "module glimpse-ci/build-kubernetes"
      echo
      echo "go 1.26.0"
      echo
      echo "replace ("
      for m in api apiextensions-apiserver apimachinery apiserver cli-runtime \
        client-go cloud-provider cluster-bootstrap code-generator component-base \
        component-helpers controller-manager cri-api cri-client cri-streaming \
        csi-translation-lib dynamic-resource-allocation endpointslice externaljwt \
        kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler \
        kubectl kubelet metrics mount-utils pod-security-admission \
        sample-apiserver streaming; do
        echo "	k8s.io/$m => k8s.io/$m $KUBE_STAGING_VERSION"
      done
      echo ")"
    } >go.mod
    pkgs=""
    for c in $kube_missing; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c@$KUBE_VERSION"; done
    # shellcheck disable=SC2086
    go get $pkgs
    for c in $kube_missing; do
      go build -o "$BIN/$c-$KUBE_VERSION.tmp" "k8s.io/kubernetes/cmd/$c"
      mv "$BIN/$c-$KUBE_VERSION.tmp" "$BIN/$c-$KUBE_VERSION"
    done
  )
fi
export GLIMPSE_KUBE_APISERVER_BIN="$BIN/kube-apiserver-$KUBE_VERSION"
export GLIMPSE_KUBE_CONTROLLER_MANAGER_BIN="$BIN/kube-controller-manager-$KUBE_VERSION"
export GLIMPSE_KUBE_SCHEDULER_BIN="$BIN/kube-scheduler-$KUBE_VERSION"
export GLIMPSE_KUBELET_BIN="$BIN/kubelet-$KUBE_VERSION"

# The node's container runtime and network: containerd and ctr come with
# docker.io; the bridge, host-local and portmap plugins with
# containernetworking-plugins (in /usr/lib/cni).
if ! command -v containerd >/dev/null 2>&1; then
  step "installing docker.io (for containerd)"
  apt_install docker.io
fi
if [ ! -x /usr/lib/cni/bridge ]; then
  step "installing containernetworking-plugins"
  apt_install containernetworking-plugins
fi
GLIMPSE_CONTAINERD_BIN="$(command -v containerd)"
GLIMPSE_CTR_BIN="$(command -v ctr)"
export GLIMPSE_CONTAINERD_BIN GLIMPSE_CTR_BIN
export GLIMPSE_CNI_BIN_DIR=/usr/lib/cni

# kubectl, for deploy/'s test that `kubectl kustomize deploy/` (what
# `kubectl apply -k deploy/` reads) renders the manifests the RBAC test
# creates; built in the same scratch module as the servers above.
if [ ! -x "$BIN/kubectl-$KUBE_VERSION" ]; then
  step "building kubectl $KUBE_VERSION"
  (
    cd "$CACHE/build-kubernetes"
    go get "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION"
    go build -o "$BIN/kubectl-$KUBE_VERSION.tmp" k8s.io/kubernetes/cmd/kubectl
    mv "$BIN/kubectl-$KUBE_VERSION.tmp" "$BIN/kubectl-$KUBE_VERSION"
  )
fi
export GLIMPSE_KUBECTL_BIN="$BIN/kubectl-$KUBE_VERSION"

# kwok, fake nodes for the scale figures (1,000 previews, where real pods
# would not fit): kube-controller-manager and kube-scheduler create and
# place the pods, kwok marks them Running and Ready without a kubelet. Its
# stages (node initialise and heartbeat, pod ready, complete and delete)
# are the module's own, joined into one file.
KWOK_VERSION=v0.8.0
if [ ! -x "$BIN/kwok-$KWOK_VERSION" ] || [ ! -s "$BIN/kwok-stages-$KWOK_VERSION.yaml" ]; then
  step "building kwok $KWOK_VERSION"
  GOBIN="$CACHE/build-kwok" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$stages/$f"
  done >"$BIN/kwok-stages-$KWOK_VERSION.yaml.tmp"
  mv "$BIN/kwok-stages-$KWOK_VERSION.yaml.tmp" "$BIN/kwok-stages-$KWOK_VERSION.yaml"
  mv "$CACHE/build-kwok/kwok" "$BIN/kwok-$KWOK_VERSION"
fi
export GLIMPSE_KWOK_BIN="$BIN/kwok-$KWOK_VERSION"
export GLIMPSE_KWOK_STAGES="$BIN/kwok-stages-$KWOK_VERSION.yaml"

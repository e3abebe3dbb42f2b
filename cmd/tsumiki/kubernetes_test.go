package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tsumiki-storage/tsumiki/nfsgw"
)

// The manifests in configs/kubernetes are decoded here the way the API
// server's strict field validation (kubectl apply --validate=strict) decodes
// them: YAML with duplicate keys refused (sigs.k8s.io/yaml YAMLToJSONStrict),
// then JSON into the k8s.io/api type of the document's apiVersion and kind
// with unknown, mis-cased and duplicate fields refused (sigs.k8s.io/json
// UnmarshalStrict). Kubernetes is a test-only dependency.

// kubeDir holds the example manifests.
var kubeDir = filepath.Join("..", "..", "configs", "kubernetes")

// kubeKinds are the kinds a manifest may hold; any other apiVersion/kind
// pair is an error.
var kubeKinds = map[metav1.TypeMeta]func() any{
	{APIVersion: "v1", Kind: "Namespace"}:             func() any { return &corev1.Namespace{} },
	{APIVersion: "v1", Kind: "ConfigMap"}:             func() any { return &corev1.ConfigMap{} },
	{APIVersion: "v1", Kind: "Secret"}:                func() any { return &corev1.Secret{} },
	{APIVersion: "v1", Kind: "Service"}:               func() any { return &corev1.Service{} },
	{APIVersion: "v1", Kind: "ServiceAccount"}:        func() any { return &corev1.ServiceAccount{} },
	{APIVersion: "v1", Kind: "PersistentVolume"}:      func() any { return &corev1.PersistentVolume{} },
	{APIVersion: "v1", Kind: "PersistentVolumeClaim"}: func() any { return &corev1.PersistentVolumeClaim{} },
	{APIVersion: "v1", Kind: "Pod"}:                   func() any { return &corev1.Pod{} },
	{APIVersion: "apps/v1", Kind: "Deployment"}:       func() any { return &appsv1.Deployment{} },
	{APIVersion: "apps/v1", Kind: "DaemonSet"}:        func() any { return &appsv1.DaemonSet{} },
	{APIVersion: "apps/v1", Kind: "StatefulSet"}:      func() any { return &appsv1.StatefulSet{} },
}

// clusterScoped are the kinds above that have no namespace.
var clusterScoped = map[string]bool{"Namespace": true, "PersistentVolume": true}

// kubeObject is one decoded manifest document.
type kubeObject struct {
	where string // file and document number, for messages
	kind  string
	meta  *metav1.ObjectMeta
	obj   any // *corev1.X or *appsv1.X
}

// splitYAMLDocuments splits a YAML stream at its document markers: lines
// that are "---" alone or followed by a space (a comment, say).
func splitYAMLDocuments(b []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		l := bytes.TrimRight(line, "\r\n")
		if bytes.Equal(l, []byte("---")) || bytes.HasPrefix(l, []byte("--- ")) {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

// decodeManifest decodes one YAML document strictly. A document with no
// content (only comments) gives a nil object and no error.
func decodeManifest(doc []byte) (*kubeObject, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err // "yaml: ..."
	}
	if t := bytes.TrimSpace(j); bytes.Equal(t, []byte("null")) || len(t) == 0 {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return nil, fmt.Errorf("apiVersion/kind: %w", err)
	}
	newObj, ok := kubeKinds[tm]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q of apiVersion %q", tm.Kind, tm.APIVersion)
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strict...))
	}
	o := &kubeObject{kind: tm.Kind, obj: obj}
	o.meta = objectMeta(obj)
	return o, nil
}

// objectMeta returns the metadata of a decoded object.
func objectMeta(obj any) *metav1.ObjectMeta {
	m, ok := obj.(interface{ GetObjectMeta() metav1.Object })
	if !ok {
		panic(fmt.Sprintf("%T has no ObjectMeta", obj))
	}
	return m.GetObjectMeta().(*metav1.ObjectMeta)
}

// decodeManifestFile decodes every document of a manifest file; the error
// names the first document that does not decode.
func decodeManifestFile(file string) ([]*kubeObject, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []*kubeObject
	for i, doc := range splitYAMLDocuments(b) {
		o, err := decodeManifest(doc)
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", filepath.Base(file), i+1, err)
		}
		if o != nil {
			o.where = fmt.Sprintf("%s document %d", filepath.Base(file), i+1)
			out = append(out, o)
		}
	}
	return out, nil
}

// kubeManifests decodes every *.yaml in configs/kubernetes.
func kubeManifests(t *testing.T) []*kubeObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if yml, _ := filepath.Glob(filepath.Join(kubeDir, "*.yml")); len(yml) > 0 {
		t.Errorf("%v: name manifests *.yaml, so that this test reads them", yml)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", kubeDir)
	}
	var all []*kubeObject
	for _, f := range files {
		objs, err := decodeManifestFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(objs) == 0 {
			t.Errorf("%s: no objects", f)
		}
		all = append(all, objs...)
	}
	if t.Failed() {
		t.FailNow()
	}
	return all
}

// kubeFind returns the objects of type T, optionally only those named name.
func kubeFind[T any](objs []*kubeObject, name string) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok && (name == "" || o.meta.Name == name) {
			out = append(out, v)
		}
	}
	return out
}

// kubeOne returns the one object of type T named name, or fails.
func kubeOne[T any](t *testing.T, objs []*kubeObject, name string) T {
	t.Helper()
	found := kubeFind[T](objs, name)
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T named %q, found %d", zero, name, len(found))
	}
	return found[0]
}

// TestKubernetesManifestsDecode decodes every manifest strictly and checks
// what the API server would check before anything runs: namespaces exist,
// names are unique, selectors select their own pods.
func TestKubernetesManifestsDecode(t *testing.T) {
	objs := kubeManifests(t)
	kinds := map[string]int{}
	namespaces := map[string]bool{}
	for _, ns := range kubeFind[*corev1.Namespace](objs, "") {
		namespaces[ns.Name] = true
	}
	seen := map[string]string{}
	for _, o := range objs {
		kinds[o.kind]++
		if o.meta.Name == "" {
			t.Errorf("%s: %s without a name", o.where, o.kind)
		}
		switch {
		case clusterScoped[o.kind] && o.meta.Namespace != "":
			t.Errorf("%s: %s %s is cluster-scoped but names namespace %q", o.where, o.kind, o.meta.Name, o.meta.Namespace)
		case !clusterScoped[o.kind] && !namespaces[o.meta.Namespace]:
			// Explicit, so that `kubectl apply -f` never lands in whatever
			// namespace the current context has.
			t.Errorf("%s: %s %s: namespace %q is not one of the manifests' Namespaces", o.where, o.kind, o.meta.Name, o.meta.Namespace)
		}
		key := o.kind + " " + o.meta.Namespace + "/" + o.meta.Name
		if prev, dup := seen[key]; dup {
			t.Errorf("%s: %s already defined in %s", o.where, key, prev)
		}
		seen[key] = o.where
	}
	for _, k := range []string{"Namespace", "ConfigMap", "Deployment", "PersistentVolume", "PersistentVolumeClaim", "Service"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in %s", k, kubeDir)
		}
	}
	claims := map[string]bool{}
	for _, c := range kubeFind[*corev1.PersistentVolumeClaim](objs, "") {
		claims[c.Namespace+"/"+c.Name] = true
	}
	for _, d := range kubeFind[*appsv1.Deployment](objs, "") {
		checkSelector(t, "Deployment "+d.Name, d.Spec.Selector, d.Spec.Template.Labels)
		for _, v := range d.Spec.Template.Spec.Volumes {
			if c := v.PersistentVolumeClaim; c != nil && !claims[d.Namespace+"/"+c.ClaimName] {
				t.Errorf("Deployment %s: volume %s uses claim %s/%s, which no manifest defines", d.Name, v.Name, d.Namespace, c.ClaimName)
			}
		}
	}
	for _, d := range kubeFind[*appsv1.DaemonSet](objs, "") {
		checkSelector(t, "DaemonSet "+d.Name, d.Spec.Selector, d.Spec.Template.Labels)
	}
}

// checkSelector fails unless sel is plain matchLabels that labels satisfy
// (the API server refuses a workload whose selector misses its template).
func checkSelector(t *testing.T, what string, sel *metav1.LabelSelector, labels map[string]string) {
	t.Helper()
	if sel == nil || len(sel.MatchLabels) == 0 || len(sel.MatchExpressions) > 0 {
		t.Errorf("%s: want a selector of matchLabels only", what)
		return
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod template's labels %v", what, k, v, labels)
		}
	}
}

// TestKubernetesGateway checks the gateway Deployment against what
// `tsumiki nfs serve --image` needs, parsing its arguments with the real
// command and its export rules with the real loader.
func TestKubernetesGateway(t *testing.T) {
	objs := kubeManifests(t)
	gw, args := kubeGateway(t, objs)
	spec := gw.Spec.Template.Spec

	if gw.Spec.Replicas == nil || *gw.Spec.Replicas != 1 {
		t.Errorf("gateway: replicas must be 1")
	}
	if gw.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("gateway: strategy %q, want Recreate (two gateways must never hold the image)", gw.Spec.Strategy.Type)
	}
	if !spec.HostNetwork {
		t.Errorf("gateway: hostNetwork must be true (ports 2049 and 111 on the node's address)")
	}
	if spec.NodeSelector["kubernetes.io/hostname"] == "" {
		t.Errorf("gateway: must be pinned to one node (nodeSelector kubernetes.io/hostname)")
	}
	// Sync, unmount (5 s of retries) and NBD detach (30 s) must fit.
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 60 {
		t.Errorf("gateway: terminationGracePeriodSeconds unset or under 60 (sync, unmount and detach must fit)")
	}
	c := spec.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Errorf("gateway: container must be privileged (nbd, mount)")
	}
	if c.LivenessProbe != nil {
		t.Errorf("gateway: no livenessProbe (a restart stalls every client)")
	}
	hostPaths := map[string]string{} // volume name → host path
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	for _, want := range []string{"/dev", "/lib/modules", "/run/tsumiki"} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == want && hostPaths[m.Name] == want
		}) {
			t.Errorf("gateway: the host's %s must be mounted at %s", want, want)
		}
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "TSUMIKI_ETCD_ENDPOINTS" && e.Value != "" }) &&
		!slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--etcd-endpoints") }) {
		t.Errorf("gateway: no control plane endpoints (env TSUMIKI_ETCD_ENDPOINTS or --etcd-endpoints)")
	}

	fl := kubeServeFlags(t, args)
	if fl.Image == "" || fl.Dir != "" {
		t.Errorf("gateway: want --image POOL/NAME and no --dir, got %v", args)
	}
	if _, _, err := parseSpec(fl.Image); err != nil {
		t.Errorf("gateway: --image: %v", err)
	}
	if fl.FS != "ext4" && fl.FS != "xfs" {
		t.Errorf("gateway: --fs %q", fl.FS)
	}
	if port := kubePort(t, fl.Listen); !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		return p.ContainerPort == int32(port) && p.Protocol == corev1.ProtocolTCP
	}) {
		t.Errorf("gateway: --listen %s is not among the container's TCP ports", fl.Listen)
	}
	if fl.Config == "" {
		t.Fatalf("gateway: no --config (without one only loopback clients are allowed)")
	}

	// The export rules: the ConfigMap mounted where --config points,
	// loaded and validated by the gateway's own code.
	cfgText := kubeConfigFile(t, objs, gw, c, fl.Config)
	file := filepath.Join(t.TempDir(), "nfsgw.yaml")
	if err := os.WriteFile(file, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	fc, err := loadNFSConfig(file)
	if err != nil {
		t.Fatalf("gateway ConfigMap: %v", err)
	}
	if len(fc.Exports) == 0 {
		t.Fatalf("gateway ConfigMap: no export rules")
	}
	exports, err := nfsExports(fc.Exports, fl.Export)
	if err != nil {
		t.Fatalf("gateway ConfigMap: %v", err)
	}
	if !slices.ContainsFunc(exports, func(e nfsgw.Export) bool { return e.Path == fl.Export && !e.ReadOnly }) {
		t.Errorf("gateway ConfigMap: no read-write rule for --export %s", fl.Export)
	}
}

// TestKubernetesVolume checks the PersistentVolume and its claim against the
// gateway: NFSv3 without locking, hard, the gateway's port and --export.
func TestKubernetesVolume(t *testing.T) {
	objs := kubeManifests(t)
	gw, args := kubeGateway(t, objs)
	fl := kubeServeFlags(t, args)
	port := strconv.Itoa(kubePort(t, fl.Listen))

	var pvs []*corev1.PersistentVolume
	for _, pv := range kubeFind[*corev1.PersistentVolume](objs, "") {
		if pv.Spec.NFS != nil {
			pvs = append(pvs, pv)
		}
	}
	if len(pvs) != 1 {
		t.Fatalf("want one NFS PersistentVolume, found %d", len(pvs))
	}
	pv := pvs[0]
	if pv.Spec.NFS.Path != fl.Export {
		t.Errorf("PersistentVolume %s: nfs.path %q, the gateway exports %q", pv.Name, pv.Spec.NFS.Path, fl.Export)
	}
	if pv.Spec.NFS.Server == "" {
		t.Errorf("PersistentVolume %s: no nfs.server", pv.Name)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("PersistentVolume %s: reclaim policy %q, want Retain", pv.Name, pv.Spec.PersistentVolumeReclaimPolicy)
	}
	if !slices.Contains(pv.Spec.AccessModes, corev1.ReadWriteMany) {
		t.Errorf("PersistentVolume %s: not ReadWriteMany", pv.Name)
	}

	opts := map[string]string{}
	for _, o := range pv.Spec.MountOptions {
		for _, o := range strings.Split(o, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(o), "=")
			if _, dup := opts[k]; dup {
				t.Errorf("PersistentVolume %s: mount option %s given twice", pv.Name, k)
			}
			opts[k] = v
		}
	}
	if opts["vers"] != "3" && opts["nfsvers"] != "3" {
		t.Errorf("PersistentVolume %s: mountOptions %v: want vers=3 (the gateway speaks NFSv3 only)", pv.Name, pv.Spec.MountOptions)
	}
	for _, want := range []string{"nolock", "hard"} {
		if v, ok := opts[want]; !ok || v != "" {
			t.Errorf("PersistentVolume %s: mountOptions %v: want %s", pv.Name, pv.Spec.MountOptions, want)
		}
	}
	for _, bad := range []string{"soft", "softerr", "lock", "udp"} {
		if _, ok := opts[bad]; ok {
			t.Errorf("PersistentVolume %s: mount option %s does not work with the gateway", pv.Name, bad)
		}
	}
	if opts["proto"] != "tcp" {
		t.Errorf("PersistentVolume %s: want proto=tcp", pv.Name)
	}
	for _, k := range []string{"port", "mountport"} {
		if v, ok := opts[k]; ok && v != port {
			t.Errorf("PersistentVolume %s: %s=%s, the gateway listens on %s", pv.Name, k, v, port)
		}
	}
	if v, ok := opts["timeo"]; ok {
		if n, err := strconv.Atoi(v); err != nil || n < 600 {
			t.Errorf("PersistentVolume %s: timeo=%s: keep at least 600 (the gateway has no duplicate-request cache)", pv.Name, v)
		}
	}

	// The claim: bound to this volume both ways, no StorageClass.
	if pv.Spec.ClaimRef == nil {
		t.Fatalf("PersistentVolume %s: no claimRef", pv.Name)
	}
	pvc := kubeOne[*corev1.PersistentVolumeClaim](t, objs, pv.Spec.ClaimRef.Name)
	if pvc.Namespace != pv.Spec.ClaimRef.Namespace {
		t.Errorf("claimRef names namespace %q, the claim is in %q", pv.Spec.ClaimRef.Namespace, pvc.Namespace)
	}
	if pvc.Spec.VolumeName != pv.Name {
		t.Errorf("PersistentVolumeClaim %s: volumeName %q, want %q", pvc.Name, pvc.Spec.VolumeName, pv.Name)
	}
	for what, sc := range map[string]*string{"PersistentVolumeClaim": pvc.Spec.StorageClassName, "PersistentVolume": &pv.Spec.StorageClassName} {
		if sc == nil || *sc != "" {
			t.Errorf("%s: storageClassName must be \"\" (statically provisioned)", what)
		}
	}
	if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
		t.Errorf("PersistentVolumeClaim %s: not ReadWriteMany", pvc.Name)
	}
	want, have := pvc.Spec.Resources.Requests[corev1.ResourceStorage], pv.Spec.Capacity[corev1.ResourceStorage]
	if want.IsZero() || have.IsZero() || want.Cmp(have) > 0 {
		t.Errorf("claim asks %s, volume has %s: it would not bind", want.String(), have.String())
	}

	// Client pods should prefer other nodes than the gateway's: their
	// placeholder must be the same node name.
	node := gw.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"]
	for _, d := range kubeFind[*appsv1.Deployment](objs, "") {
		if d == gw {
			continue
		}
		aff := d.Spec.Template.Spec.Affinity
		if aff == nil || aff.NodeAffinity == nil {
			continue
		}
		for _, p := range aff.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			for _, e := range p.Preference.MatchExpressions {
				if e.Key == "kubernetes.io/hostname" && e.Operator == corev1.NodeSelectorOpNotIn && !slices.Contains(e.Values, node) {
					t.Errorf("Deployment %s: avoids nodes %v, the gateway runs on %q", d.Name, e.Values, node)
				}
			}
		}
	}
}

// TestKubernetesWorkloads checks the example proxy and writer: the proxy
// reads the claim read-only behind its Service, the writer writes it.
func TestKubernetesWorkloads(t *testing.T) {
	objs := kubeManifests(t)
	proxy := kubeOne[*appsv1.Deployment](t, objs, "proxy")
	writer := kubeOne[*appsv1.Deployment](t, objs, "writer")
	claim := kubeOne[*corev1.PersistentVolume](t, objs, "").Spec.ClaimRef.Name

	mount := func(d *appsv1.Deployment) (*corev1.Volume, *corev1.VolumeMount) {
		t.Helper()
		spec := d.Spec.Template.Spec
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool {
			return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim
		})
		if i < 0 {
			t.Fatalf("Deployment %s does not use claim %s", d.Name, claim)
		}
		v := &spec.Volumes[i]
		for _, c := range spec.Containers {
			for j := range c.VolumeMounts {
				if c.VolumeMounts[j].Name == v.Name {
					return v, &c.VolumeMounts[j]
				}
			}
		}
		t.Fatalf("Deployment %s: volume %s is not mounted", d.Name, v.Name)
		return nil, nil
	}
	v, m := mount(proxy)
	if !m.ReadOnly || !v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("proxy: the claim must be mounted readOnly (volumeMount %v, volume %v)", m.ReadOnly, v.PersistentVolumeClaim.ReadOnly)
	}
	v, m = mount(writer)
	if m.ReadOnly || v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("writer: the claim must be writable")
	}
	if sc := writer.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("writer: must run as a non-root uid (the gateway squashes root)")
	}

	svc := kubeOne[*corev1.Service](t, objs, "proxy")
	if svc.Namespace != proxy.Namespace {
		t.Errorf("Service proxy in %q, the Deployment in %q", svc.Namespace, proxy.Namespace)
	}
	checkSelector(t, "Service proxy", &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, proxy.Spec.Template.Labels)
	for _, p := range svc.Spec.Ports {
		ok := false
		for _, c := range proxy.Spec.Template.Spec.Containers {
			ok = ok || slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
				return (p.TargetPort.StrVal != "" && cp.Name == p.TargetPort.StrVal) || (p.TargetPort.StrVal == "" && cp.ContainerPort == p.TargetPort.IntVal)
			})
		}
		if !ok {
			t.Errorf("Service proxy: targetPort %s is no port of the proxy's containers", p.TargetPort.String())
		}
	}
}

// kubeGateway returns the workload that runs `tsumiki nfs serve` and its
// arguments (without the program name).
func kubeGateway(t *testing.T, objs []*kubeObject) (*appsv1.Deployment, []string) {
	t.Helper()
	var gw *appsv1.Deployment
	var args []string
	for _, d := range kubeFind[*appsv1.Deployment](objs, "") {
		for _, c := range d.Spec.Template.Spec.Containers {
			a := append(slices.Clone(c.Command), c.Args...)
			if len(a) >= 3 && path.Base(a[0]) == "tsumiki" && a[1] == "nfs" && a[2] == "serve" {
				if gw != nil {
					t.Fatalf("two gateways: Deployments %s and %s", gw.Name, d.Name)
				}
				if len(d.Spec.Template.Spec.Containers) != 1 {
					t.Fatalf("Deployment %s: want the gateway container alone", d.Name)
				}
				gw, args = d, a[1:]
			}
		}
	}
	if len(kubeFind[*appsv1.DaemonSet](objs, "")) > 0 {
		t.Errorf("a DaemonSet: run the gateway as a one-replica Deployment (one gateway per image)")
	}
	if gw == nil {
		t.Fatalf("no Deployment runs `tsumiki nfs serve` (command [.../tsumiki] with args [nfs serve ...])")
	}
	return gw, args
}

// kubeServeFlags parses args with the real `tsumiki` command: an unknown
// flag or a stray argument fails the test.
func kubeServeFlags(t *testing.T, args []string) nfsServeFlags {
	t.Helper()
	cmd, rest, err := newRoot().Find(args)
	if err != nil {
		t.Fatalf("gateway args %v: %v", args, err)
	}
	if cmd.CommandPath() != "tsumiki nfs serve" {
		t.Fatalf("gateway args %v run %q", args, cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("gateway args %v: %v", args, err)
	}
	if extra := cmd.Flags().Args(); len(extra) > 0 {
		t.Fatalf("gateway args: stray arguments %v", extra)
	}
	get := func(name string) string {
		v, err := cmd.Flags().GetString(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return nfsServeFlags{Dir: get("dir"), Image: get("image"), FS: get("fs"), Export: get("export"),
		Listen: get("listen"), PortmapListen: get("portmap-listen"), Config: get("config")}
}

// kubePort returns the port of a listen address such as ":2049".
func kubePort(t *testing.T, listen string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil || n <= 0 || n > 65535 {
		t.Fatalf("listen address %q has no port", listen)
	}
	return n
}

// kubeConfigFile returns the text of the file at path in container c: a key
// of a ConfigMap volume mounted at path's folder.
func kubeConfigFile(t *testing.T, objs []*kubeObject, d *appsv1.Deployment, c corev1.Container, file string) string {
	t.Helper()
	dir, key := path.Split(file)
	dir = strings.TrimSuffix(dir, "/")
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir && m.SubPath == "" })
	if i < 0 {
		t.Fatalf("--config %s: nothing is mounted at %s", file, dir)
	}
	vol := c.VolumeMounts[i].Name
	j := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vol })
	if j < 0 || d.Spec.Template.Spec.Volumes[j].ConfigMap == nil {
		t.Fatalf("--config %s: volume %s is not a ConfigMap", file, vol)
	}
	src := d.Spec.Template.Spec.Volumes[j].ConfigMap
	for _, it := range src.Items { // items rename keys to paths
		if it.Path == key {
			key = it.Key
		}
	}
	for _, cm := range kubeFind[*corev1.ConfigMap](objs, src.Name) {
		if cm.Namespace == d.Namespace {
			text, ok := cm.Data[key]
			if !ok {
				t.Fatalf("ConfigMap %s has no key %s", cm.Name, key)
			}
			return text
		}
	}
	t.Fatalf("--config %s: no ConfigMap %s/%s", file, d.Namespace, src.Name)
	return ""
}

// TestKubernetesDecoderRejects makes sure the decoder above can fail: each
// broken manifest must be refused, and the control must pass.
func TestKubernetesDecoderRejects(t *testing.T) {
	const pv = `apiVersion: v1
kind: PersistentVolume
metadata:
  name: x
spec:
  capacity:
    storage: 1Gi
  accessModes: [ReadWriteMany]
  mountOptions: [vers=3, nolock]
  nfs:
    server: 192.0.2.10
    path: /data
`
	const deploy = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
  namespace: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
        - name: x
          image: busybox
`
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"control PersistentVolume", pv, true},
		{"control Deployment", deploy, true},
		{"comments only", "# nothing here\n", true},
		{"misspelled field", strings.Replace(pv, "mountOptions:", "mountOption:", 1), false},
		{"misspelled nested field", strings.Replace(pv, "server:", "sever:", 1), false},
		{"misspelled field in a pod template", strings.Replace(deploy, "image:", "imgae:", 1), false},
		{"mis-cased field", strings.Replace(pv, "mountOptions:", "MountOptions:", 1), false},
		{"duplicate key", strings.Replace(pv, "  name: x\n", "  name: x\n  name: y\n", 1), false},
		{"unknown kind", strings.Replace(pv, "kind: PersistentVolume", "kind: PersistentVolum", 1), false},
		{"kind under the wrong apiVersion", strings.Replace(pv, "apiVersion: v1", "apiVersion: apps/v1", 1), false},
		{"no apiVersion or kind", strings.Replace(strings.Replace(pv, "apiVersion: v1\n", "", 1), "kind: PersistentVolume\n", "", 1), false},
		{"wrong type", strings.Replace(deploy, "replicas: 1", `replicas: "1"`, 1), false},
		{"bad quantity", strings.Replace(pv, "storage: 1Gi", "storage: 1 GB", 1), false},
		{"not YAML", "apiVersion: v1\nkind: [\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeManifest([]byte(tc.doc))
			if tc.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.ok {
				if err == nil {
					t.Errorf("accepted:\n%s", tc.doc)
				} else {
					t.Logf("refused: %v", err)
				}
			}
		})
	}

	// A whole file: the second document's misspelling is found and named.
	file := filepath.Join(t.TempDir(), "bad.yaml")
	two := "# a comment\n---\n" + deploy + "--- # second\n" + strings.Replace(pv, "  nfs:\n", "  nfss:\n", 1)
	if err := os.WriteFile(file, []byte(two), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeManifestFile(file); err == nil || !strings.Contains(err.Error(), "document 3") {
		t.Errorf("decodeManifestFile of a file whose third document is misspelled: %v", err)
	}
	good := "# a comment\n---\n" + deploy + "--- # second\n" + pv
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if objs, err := decodeManifestFile(file); err != nil || len(objs) != 2 {
		t.Errorf("decodeManifestFile of a good file: %d objects, %v", len(objs), err)
	}
}

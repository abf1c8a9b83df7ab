package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.yaml.in/yaml/v3"

	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/redisconn"
	"github.com/llmfleet/llmfleet/worker"
)

const manifestDir = "kubernetes"

// The parts of the Kubernetes and KEDA objects the tests look at. Fields
// the tests do not read are not declared (decoding is not strict).

type objectMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type object struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	file       string
	node       *yaml.Node
}

type selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
	RestartPolicy                 string `yaml:"restartPolicy"`
	SecurityContext               *struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type deployment struct {
	Spec struct {
		Replicas *int        `yaml:"replicas"`
		Selector selector    `yaml:"selector"`
		Template podTemplate `yaml:"template"`
	} `yaml:"spec"`
}

type job struct {
	Spec struct {
		Template podTemplate `yaml:"template"`
	} `yaml:"spec"`
}

type pdb struct {
	Spec struct {
		Selector       selector `yaml:"selector"`
		MinAvailable   any      `yaml:"minAvailable"`
		MaxUnavailable any      `yaml:"maxUnavailable"`
	} `yaml:"spec"`
}

type scaledObject struct {
	Spec struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		Triggers        []struct {
			Type              string            `yaml:"type"`
			Metadata          map[string]string `yaml:"metadata"`
			AuthenticationRef *struct {
				Name string `yaml:"name"`
			} `yaml:"authenticationRef"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type triggerAuthentication struct {
	Spec struct {
		SecretTargetRef []struct {
			Parameter string `yaml:"parameter"`
			Name      string `yaml:"name"`
			Key       string `yaml:"key"`
		} `yaml:"secretTargetRef"`
	} `yaml:"spec"`
}

type configData struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

type kustomization struct {
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name string `yaml:"name"`
	} `yaml:"images"`
}

// manifests parses every document of every YAML file in deploy/kubernetes
// except the kustomization.
func manifests(t *testing.T) []object {
	t.Helper()
	return manifestsIn(t, manifestDir)
}

// manifestsIn parses every document of every YAML file in dir except its
// kustomization.
func manifestsIn(t *testing.T, dir string) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			var o object
			if err := n.Decode(&o); err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s, document %d: apiVersion %q kind %q name %q: all three are required", f, i+1, o.APIVersion, o.Kind, o.Metadata.Name)
			}
			o.file, o.node = filepath.Base(f), &n
			objs = append(objs, o)
		}
	}
	return objs
}

// one returns the only object of kind (and name, when not empty), decoded
// into v.
func one(t *testing.T, objs []object, kind, name string, v any) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind && (name == "" || o.Metadata.Name == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s named %q, want 1", len(found), kind, name)
	}
	if err := found[0].node.Decode(v); err != nil {
		t.Fatalf("%s %s: %v", kind, found[0].Metadata.Name, err)
	}
	return found[0]
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false // an empty selector selects everything
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// asynqPendingKey is asynq's key of a queue's pending list. asynq's base
// package is internal, so its formula is copied here from
// github.com/hibiken/asynq@v0.26.0 internal/base/base.go:
//
//	func QueueKeyPrefix(qname string) string { return "asynq:{" + qname + "}:" }   // line 106
//	func PendingKey(qname string) string { return QueueKeyPrefix(qname) + "pending" } // line 121
//
// TestScaledObjectListIsAsynqs checks it against a real enqueue.
func asynqPendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }

// workerQueues returns the queues of worker args (--queues, default
// "default=1" as cmd/worker's flag says).
func workerQueues(t *testing.T, args []string) []string {
	t.Helper()
	spec, ok := flagValue(args, "queues")
	if !ok {
		spec = "default=1"
	}
	q, err := worker.ParseQueues(spec)
	if err != nil {
		t.Fatalf("worker --queues %q: %v", spec, err)
	}
	return slices.Sorted(maps.Keys(q))
}

func TestManifestKinds(t *testing.T) {
	t.Parallel()
	want := map[string]string{ // kind → apiVersion
		"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1",
		"Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1", "Job": "batch/v1",
		"ScaledObject": "keda.sh/v1alpha1", "TriggerAuthentication": "keda.sh/v1alpha1",
	}
	seen := map[string]bool{}
	for _, o := range manifests(t) {
		api, ok := want[o.Kind]
		if !ok {
			t.Errorf("%s: unexpected kind %s", o.file, o.Kind)
			continue
		}
		if o.APIVersion != api {
			t.Errorf("%s: %s %s has apiVersion %s, want %s", o.file, o.Kind, o.Metadata.Name, o.APIVersion, api)
		}
		seen[o.Kind] = true
	}
	for kind := range want {
		if !seen[kind] {
			t.Errorf("no %s among the manifests", kind)
		}
	}
}

// The kustomization lists every manifest but the examples, and only files
// that exist. An example (the Secret's placeholders) is never applied: it
// would overwrite the real Secret.
func TestKustomization(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !strings.HasSuffix(base, ".example.yaml") {
			want = append(want, base)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(manifestDir, r)); err != nil {
			t.Errorf("kustomization lists %s: %v", r, err)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %q, want every manifest but the examples %q", got, want)
	}
	// Its image rewrite applies to the containers' image name.
	if len(k.Images) != 1 || k.Images[0].Name != "llmfleet" {
		t.Errorf("kustomization images %+v, want one rewrite of image llmfleet", k.Images)
	}
	objs := manifests(t)
	var d deployment
	one(t, objs, "Deployment", "", &d)
	var j job
	one(t, objs, "Job", "", &j)
	for _, c := range append(d.Spec.Template.Spec.Containers, j.Spec.Template.Spec.Containers...) {
		if c.Image != "llmfleet" {
			t.Errorf("container %s image %q: the kustomization rewrites llmfleet", c.Name, c.Image)
		}
	}
}

// workerContainer returns the Deployment and its worker container.
func workerContainer(t *testing.T, objs []object) (object, deployment, container) {
	t.Helper()
	var d deployment
	o := one(t, objs, "Deployment", "", &d)
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(cs))
	}
	return o, d, cs[0]
}

// probePort resolves a probe's port (number or name) to a number.
func probePort(t *testing.T, c container, p *probe) int {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("container %s: missing httpGet probe", c.Name)
	}
	v := p.HTTPGet.Port.Value
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	for _, port := range c.Ports {
		if port.Name == v {
			return port.ContainerPort
		}
	}
	t.Fatalf("probe port %q names no port of container %s", v, c.Name)
	return 0
}

func TestWorkerDeployment(t *testing.T) {
	t.Parallel()
	objs := manifests(t)
	_, d, c := workerContainer(t, objs)
	tmpl := d.Spec.Template

	if !subset(d.Spec.Selector.MatchLabels, tmpl.Metadata.Labels) {
		t.Errorf("selector %v does not match the pod labels %v", d.Spec.Selector.MatchLabels, tmpl.Metadata.Labels)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("replicas: %d: KEDA owns the count; kubectl apply would reset it", *d.Spec.Replicas)
	}

	if len(c.Command) != 1 || c.Command[0] != "worker" || !slices.Contains(imageBinaries(t), "worker") {
		t.Errorf("command %q, want [worker], a binary of the image", c.Command)
	}
	metrics, ok := flagValue(c.Args, "metrics-addr")
	if !ok {
		t.Fatalf("worker args %q set no --metrics-addr: no health endpoints", c.Args)
	}
	port, _ := strconv.Atoi(portOf(t, metrics))
	if got := probePort(t, c, c.LivenessProbe); got != port || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe GET %s on %d, want /healthz on %d (--metrics-addr %s)", c.LivenessProbe.HTTPGet.Path, got, port, metrics)
	}
	if got := probePort(t, c, c.ReadinessProbe); got != port || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe GET %s on %d, want /readyz on %d (--metrics-addr %s)", c.ReadinessProbe.HTTPGet.Path, got, port, metrics)
	}

	st, ok := flagValue(c.Args, "shutdown-timeout")
	drain := 25 * time.Second // cmd/worker's default
	if ok {
		var err error
		if drain, err = time.ParseDuration(st); err != nil {
			t.Fatal(err)
		}
	}
	if g := tmpl.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
		t.Errorf("terminationGracePeriodSeconds %s is not longer than --shutdown-timeout %s: workers would be killed mid-drain", show(g), drain)
	}

	for _, k := range []string{"cpu", "memory"} {
		if c.Resources.Requests[k] == "" {
			t.Errorf("no %s request", k)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("no memory limit")
	}

	// Non-root, as the image's USER.
	sc := tmpl.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", sc)
	} else if user := dockerUser(t); user != strconv.Itoa(*sc.RunAsUser) {
		t.Errorf("runAsUser %d, the image's USER is %s", *sc.RunAsUser, user)
	}
	if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation ||
		c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("container securityContext %+v: want no privilege escalation and a read-only root", c.SecurityContext)
	}

	// Its Secret and ConfigMap exist with the keys it reads.
	checkEnvSources(t, objs, c)

	// The PodDisruptionBudget covers these pods.
	var b pdb
	one(t, objs, "PodDisruptionBudget", "", &b)
	if !subset(b.Spec.Selector.MatchLabels, tmpl.Metadata.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the worker pods %v", b.Spec.Selector.MatchLabels, tmpl.Metadata.Labels)
	}
	if (b.Spec.MinAvailable == nil) == (b.Spec.MaxUnavailable == nil) {
		t.Error("PodDisruptionBudget needs exactly one of minAvailable and maxUnavailable")
	}
}

// show prints an optional number.
func show(n *int) string {
	if n == nil {
		return "(unset)"
	}
	return strconv.Itoa(*n)
}

// dockerUser returns the uid of the image's USER.
func dockerUser(t *testing.T) string {
	t.Helper()
	df := parseDockerfile(t, dockerfilePath)
	for _, in := range df.stages[len(df.stages)-1].body {
		if in.cmd == "USER" {
			uid, _, _ := strings.Cut(in.args, ":")
			return uid
		}
	}
	return ""
}

// checkEnvSources checks that the Secrets and ConfigMaps a container reads
// exist and hold the keys.
func checkEnvSources(t *testing.T, objs []object, c container) {
	t.Helper()
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		var s configData
		one(t, objs, "Secret", ref.Name, &s)
		if _, ok := s.StringData[ref.Key]; !ok {
			t.Errorf("container %s reads %s from Secret %s, which has no key %s", c.Name, e.Name, ref.Name, ref.Key)
		}
	}
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil {
			var cm configData
			one(t, objs, "ConfigMap", e.ConfigMapRef.Name, &cm)
		}
	}
}

// The example Secret holds a usable URL form and no real secret.
func TestSecretExample(t *testing.T) {
	t.Parallel()
	var s configData
	one(t, manifests(t), "Secret", "", &s)
	c, err := redisconn.Parse(s.StringData["REDIS_URL"])
	if err != nil {
		t.Fatalf("example REDIS_URL: %v", err)
	}
	if c.Single.Password != s.StringData["REDIS_PASSWORD"] {
		t.Error("the example's REDIS_URL and REDIS_PASSWORD (the KEDA scaler's) differ")
	}
	if c.Single.Password != "REPLACE_ME" || s.StringData["OPENAI_API_KEY"] != "" {
		t.Error("the example Secret must hold placeholders only")
	}
}

func TestScaledObject(t *testing.T) {
	t.Parallel()
	objs := manifests(t)
	dobj, _, c := workerContainer(t, objs)
	var so scaledObject
	one(t, objs, "ScaledObject", "", &so)
	ref := so.Spec.ScaleTargetRef
	if ref.Name != dobj.Metadata.Name || (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
		t.Errorf("scaleTargetRef %+v, want the Deployment %s", ref, dobj.Metadata.Name)
	}
	// Only a running asynq server moves retry and scheduled tasks to
	// pending: at zero workers they would wait forever.
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
		t.Errorf("minReplicaCount %s, want at least 1", show(so.Spec.MinReplicaCount))
	} else if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount {
		t.Errorf("maxReplicaCount %s is below minReplicaCount", show(so.Spec.MaxReplicaCount))
	}

	// One redis trigger per queue the workers serve, on its pending list.
	queues := workerQueues(t, c.Args)
	var lists []string
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "redis" {
			t.Errorf("trigger type %q, want redis (asynq's pending queue is a list)", tr.Type)
			continue
		}
		m := tr.Metadata
		lists = append(lists, m["listName"])
		if n, err := strconv.Atoi(m["listLength"]); err != nil || n < 1 {
			t.Errorf("listLength %q, want a positive number", m["listLength"])
		}
		// The address comes from the worker container's environment.
		if env := m["addressFromEnv"]; env != "" {
			found := false
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef == nil {
					continue
				}
				var cm configData
				one(t, objs, "ConfigMap", e.ConfigMapRef.Name, &cm)
				_, found = cm.Data[env]
			}
			if !found {
				t.Errorf("addressFromEnv %s is not in the worker's environment", env)
			}
		} else if m["address"] == "" {
			t.Error("the redis trigger has no address")
		}
		// The password through a TriggerAuthentication on the Secret.
		if tr.AuthenticationRef == nil {
			t.Error("the redis trigger has no authenticationRef: Redis has a password")
			continue
		}
		var ta triggerAuthentication
		one(t, objs, "TriggerAuthentication", tr.AuthenticationRef.Name, &ta)
		for _, r := range ta.Spec.SecretTargetRef {
			var s configData
			one(t, objs, "Secret", r.Name, &s)
			if _, ok := s.StringData[r.Key]; !ok || r.Parameter != "password" {
				t.Errorf("TriggerAuthentication ref %+v: want parameter password from an existing key", r)
			}
		}
	}
	var want []string
	for _, q := range queues {
		want = append(want, asynqPendingKey(q))
	}
	slices.Sort(lists)
	if !slices.Equal(lists, want) {
		t.Errorf("ScaledObject watches lists %q, want the pending lists of the worker's queues %q", lists, want)
	}
}

// The list the ScaledObject watches is the one asynq fills: enqueue into a
// real Redis and count.
func TestScaledObjectListIsAsynqs(t *testing.T) {
	t.Parallel()
	var so scaledObject
	one(t, manifests(t), "ScaledObject", "", &so)
	list := so.Spec.Triggers[0].Metadata["listName"]
	queue := strings.TrimSuffix(strings.TrimPrefix(list, "asynq:{"), "}:pending")

	srv := testredis.Start(t)
	rdb := srv.Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	for range 3 {
		if _, err := client.Enqueue(asynq.NewTask("deploy:test", nil), asynq.Queue(queue)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rdb.LLen(context.Background(), list).Result()
	if err != nil || n != 3 {
		t.Errorf("LLEN %s = %d (%v) after 3 enqueues into queue %q, want 3", list, n, err, queue)
	}
}

// The probes' paths, asked of a real worker on the Deployment's
// --metrics-addr port (moved to a free one): /healthz and /readyz answer
// 200 with Redis up.
func TestProbesHitRealWorker(t *testing.T) {
	t.Parallel()
	_, _, c := workerContainer(t, manifests(t))
	srv := testredis.Start(t)
	w, err := worker.New(srv.Client(t), worker.Config{MetricsAddr: "127.0.0.1:0", ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	compose := mustLoad(t, nil)
	hc := service(t, compose, "worker").HealthCheck.Test
	composePath := path.Clean("/" + strings.SplitN(strings.TrimPrefix(hc[len(hc)-1], "http://"), "/", 2)[1])
	for _, p := range []string{c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path, composePath} {
		resp, err := http.Get("http://" + w.MetricsAddr() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", p, resp.Status)
		}
	}
}

// The producer Job runs the image's producer on a file its volume holds.
func TestProducerJob(t *testing.T) {
	t.Parallel()
	objs := manifests(t)
	var j job
	one(t, objs, "Job", "", &j)
	spec := j.Spec.Template.Spec
	if spec.RestartPolicy != "Never" && spec.RestartPolicy != "OnFailure" {
		t.Errorf("restartPolicy %q: a Job needs Never or OnFailure", spec.RestartPolicy)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Command) != 1 || c.Command[0] != "producer" || !slices.Contains(imageBinaries(t), "producer") {
		t.Errorf("command %q, want [producer]", c.Command)
	}
	if len(c.Args) < 2 || c.Args[0] != "run" {
		t.Fatalf("args %q, want run ... FILE", c.Args)
	}
	if job, ok := flagValue(c.Args, "job"); !ok || job == "" {
		t.Errorf("args %q set no --job", c.Args)
	}
	checkEnvSources(t, objs, c)

	// The input file is a key of the mounted ConfigMap, one JSON item per
	// line.
	file := c.Args[len(c.Args)-1]
	var found bool
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, file)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			var cm configData
			one(t, objs, "ConfigMap", v.ConfigMap.Name, &cm)
			items, ok := cm.Data[rel]
			if !ok {
				t.Errorf("ConfigMap %s has no %s", v.ConfigMap.Name, rel)
			}
			for i, line := range strings.Split(strings.TrimSpace(items), "\n") {
				var item struct {
					ID     string `json:"id"`
					Prompt string `json:"prompt"`
				}
				if err := json.Unmarshal([]byte(line), &item); err != nil || item.Prompt == "" {
					t.Errorf("%s line %d: %q is not an item with a prompt (%v)", rel, i+1, line, err)
				}
			}
			found = true
		}
	}
	if !found {
		t.Errorf("the input %s is on no mounted ConfigMap", file)
	}
}

package deploy_test

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"
)

// consoleDir holds the optional console's manifests, applied on their own
// (kubectl apply -k deploy/kubernetes/console).
var consoleDir = filepath.Join(manifestDir, "console")

type k8sService struct {
	Spec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type tcpProbe struct {
	TCPSocket *struct {
		Port yaml.Node `yaml:"port"`
	} `yaml:"tcpSocket"`
}

type tcpProbes struct {
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					LivenessProbe  *tcpProbe `yaml:"livenessProbe"`
					ReadinessProbe *tcpProbe `yaml:"readinessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func TestConsoleManifests(t *testing.T) {
	t.Parallel()
	objs := manifestsIn(t, consoleDir)

	// The kustomization applies exactly these, in the fleet's namespace,
	// with the fleet's image rewrite.
	b, err := os.ReadFile(filepath.Join(consoleDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		kustomization `yaml:",inline"`
		Namespace     string `yaml:"namespace"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, o := range objs {
		if !slices.Contains(files, o.file) {
			files = append(files, o.file)
		}
	}
	if got := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(got, slices.Sorted(slices.Values(files))) {
		t.Errorf("console kustomization resources %q, want its manifests %q", got, files)
	}
	if k.Namespace != "llmfleet" || len(k.Images) != 1 || k.Images[0].Name != "llmfleet" {
		t.Errorf("console kustomization namespace %q images %+v, want llmfleet and the llmfleet image rewrite", k.Namespace, k.Images)
	}

	var d deployment
	one(t, objs, "Deployment", "llmfleet-console", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("console replicas %s, want 1 (its cookie key is per process)", show(d.Spec.Replicas))
	}
	pod := d.Spec.Template
	if !subset(d.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Errorf("selector %v does not select the pod labels %v", d.Spec.Selector.MatchLabels, pod.Metadata.Labels)
	}
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.RunAsUser == nil || strconv.Itoa(*sc.RunAsUser) != dockerUser(t) {
		t.Errorf("console pod securityContext %+v, want runAsNonRoot as the image's user %s", sc, dockerUser(t))
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("console pod has %d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if c.Image != "llmfleet" || !slices.Equal(c.Command, []string{"producer"}) || !slices.Contains(imageBinaries(t), "producer") {
		t.Errorf("console container runs %s %q, want the llmfleet image's producer", c.Image, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != "console" {
		t.Fatalf("console args %q, want console ...", c.Args)
	}
	addr, ok := flagValue(c.Args, "addr")
	if !ok {
		t.Fatalf("console args %q have no --addr", c.Args)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "0.0.0.0" {
		t.Errorf("console --addr %s: the Service would not reach it", addr)
	}
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Errorf("console ports %+v, want containerPort %s (--addr)", c.Ports, port)
	}
	if s := c.SecurityContext; s == nil || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem ||
		s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation {
		t.Errorf("console container securityContext %+v, want a read-only root and no privilege escalation", s)
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("console has no memory limit")
	}
	// The token and Redis come from the fleet's Secret, and the example
	// Secret documents the token's key (empty: the console refuses to run
	// beyond loopback without one).
	from := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("console env %s is not read from a Secret", e.Name)
			continue
		}
		from[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
	}
	for env, want := range map[string]string{"REDIS_URL": "llmfleet-secrets/REDIS_URL", "LLMFLEET_CONSOLE_TOKEN": "llmfleet-secrets/LLMFLEET_CONSOLE_TOKEN"} {
		if from[env] != want {
			t.Errorf("console %s comes from %q, want Secret %s", env, from[env], want)
		}
	}
	checkEnvSources(t, manifests(t), c)
	var secret configData
	one(t, manifests(t), "Secret", "llmfleet-secrets", &secret)
	if tok, ok := secret.StringData["LLMFLEET_CONSOLE_TOKEN"]; !ok || tok != "" {
		t.Errorf("example Secret LLMFLEET_CONSOLE_TOKEN = %q (present %v), want present and empty", tok, ok)
	}
	// Every HTTP path needs the token: the probes are TCP.
	var probes tcpProbes
	one(t, objs, "Deployment", "llmfleet-console", &probes)
	for _, pc := range probes.Spec.Template.Spec.Containers {
		if pc.LivenessProbe == nil || pc.LivenessProbe.TCPSocket == nil || pc.ReadinessProbe == nil || pc.ReadinessProbe.TCPSocket == nil {
			t.Errorf("console probes %+v %+v, want TCP liveness and readiness probes", pc.LivenessProbe, pc.ReadinessProbe)
		}
	}

	// The Service stays inside the cluster and reaches the container port.
	var svc k8sService
	one(t, objs, "Service", "llmfleet-console", &svc)
	if svc.Spec.Type != "" && svc.Spec.Type != "ClusterIP" {
		t.Errorf("console Service type %s, want ClusterIP (port-forward or an Ingress with TLS)", svc.Spec.Type)
	}
	if !subset(svc.Spec.Selector, pod.Metadata.Labels) {
		t.Errorf("Service selector %v does not select the console pod %v", svc.Spec.Selector, pod.Metadata.Labels)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("console Service ports %+v, want one", svc.Spec.Ports)
	}
	if tp := svc.Spec.Ports[0].TargetPort.Value; tp != c.Ports[0].Name && tp != port {
		t.Errorf("console Service targetPort %q, want the container port %s (%s)", tp, c.Ports[0].Name, port)
	}
}

package helm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// render runs `helm template` on the chart with --set values and returns the manifests
// by kind (and name for ConfigMaps), or helm's error.
func render(t *testing.T, sets ...string) (map[string][]map[string]any, error) {
	t.Helper()
	// No timeout of its own: the first run builds helm (scripts/test.sh builds it before
	// the tests start), and go test's -timeout bounds the whole run.
	ctx := context.Background()
	args := []string{"tool", "-modfile=" + filepath.Join("..", "tools", "go.mod"), "helm", "template", "r", filepath.Join("ucprelay")}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(stderr.String())
	}
	out := map[string][]map[string]any{}
	dec := yaml.NewDecoder(&stdout)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if doc == nil {
			continue
		}
		kind, _ := doc["kind"].(string)
		out[kind] = append(out[kind], doc)
	}
	return out, nil
}

func mustRender(t *testing.T, sets ...string) map[string][]map[string]any {
	t.Helper()
	m, err := render(t, sets...)
	if err != nil {
		t.Fatalf("helm template %v: %v", sets, err)
	}
	return m
}

// at walks a manifest by keys and list indexes.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no element %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func TestChartDefaults(t *testing.T) {
	m := mustRender(t)
	for _, kind := range []string{"Deployment", "ConfigMap", "Service", "PodDisruptionBudget", "ServiceAccount"} {
		if len(m[kind]) != 1 {
			t.Errorf("%d %s, want 1", len(m[kind]), kind)
		}
	}
	for _, kind := range []string{"ScaledObject", "HorizontalPodAutoscaler", "ServiceMonitor", "Secret"} {
		if len(m[kind]) != 0 {
			t.Errorf("%s rendered without being enabled", kind)
		}
	}
	d := m["Deployment"][0]
	if r := at(t, d, "spec", "replicas"); r != 2 {
		t.Errorf("replicas %v", r)
	}
	pod := at(t, d, "spec", "template", "spec")
	c := at(t, pod, "containers", 0)
	for path, want := range map[string]any{
		"securityContext.readOnlyRootFilesystem":   true,
		"securityContext.allowPrivilegeEscalation": false,
		"livenessProbe.httpGet.path":               "/healthz",
		"readinessProbe.httpGet.path":              "/readyz",
		"startupProbe.httpGet.path":                "/healthz",
		"volumeMounts.0.mountPath":                 "/etc/ucprelay",
	} {
		var keys []any
		for _, k := range strings.Split(path, ".") {
			if k == "0" {
				keys = append(keys, 0)
			} else {
				keys = append(keys, k)
			}
		}
		if got := at(t, c, keys...); got != want {
			t.Errorf("container %s = %v, want %v", path, got, want)
		}
	}
	if at(t, pod, "enableServiceLinks") != false {
		t.Error("service links on: Kubernetes injects UCPRELAY_* variables that are not configuration")
	}
	if at(t, pod, "securityContext", "runAsNonRoot") != true || at(t, c, "securityContext", "capabilities", "drop", 0) != "ALL" {
		t.Error("pod does not run as non-root without capabilities")
	}
	if at(t, c, "resources", "requests", "cpu") == nil || at(t, c, "resources", "limits", "memory") == nil {
		t.Error("no resources")
	}
	if g, ok := at(t, pod, "terminationGracePeriodSeconds").(int); !ok || g <= 30 {
		t.Errorf("grace %v: must exceed the relay's shutdown (attempt timeout + commit)", g)
	}

	// The configuration the chart ships is one the relay accepts: `ucprelay config check`
	// on it (with its API key file in place) succeeds and shows what the chart set.
	text, _ := at(t, m["ConfigMap"][0], "data", "config.yaml").(string)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "google-api-key")
	if err := os.WriteFile(keyFile, []byte("a-test-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "/var/run/secrets/ucprelay/google-api-key", keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	check := exec.CommandContext(context.Background(), "go", "run", filepath.Join("..", "cmd", "ucprelay"), "config", "check", p)
	// As the pod has it: without the test harness's UCPRELAY_TEST_* variables, which
	// strict loading would refuse as unknown configuration.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "UCPRELAY_TEST_") {
			check.Env = append(check.Env, kv)
		}
	}
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("the chart's config is refused: %v\n%s\n%s", err, out, text)
	}
	for _, want := range []string{"listen: :8080", `ucp_version: "2026-04-08"`, "partners.google api key: [REDACTED]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config check of the chart's config lacks %q:\n%s", want, out)
		}
	}
}

// Replicas never exceed the input's partition count: not by replicaCount, not by KEDA,
// not by the HPA.
func TestChartReplicasNeverAbovePartitions(t *testing.T) {
	m := mustRender(t, "replicaCount=40", "kafka.partitions=6")
	if r := at(t, m["Deployment"][0], "spec", "replicas"); r != 6 {
		t.Errorf("replicas %v with 6 partitions", r)
	}
	m = mustRender(t, "keda.enabled=true", "keda.maxReplicas=50", "kafka.partitions=6")
	so := m["ScaledObject"]
	if len(so) != 1 {
		t.Fatal("no ScaledObject")
	}
	if r := at(t, so[0], "spec", "maxReplicaCount"); r != 6 {
		t.Errorf("KEDA max %v with 6 partitions", r)
	}
	tr := at(t, so[0], "spec", "triggers", 0)
	if at(t, tr, "type") != "kafka" || at(t, tr, "metadata", "allowIdleConsumers") != "false" || at(t, tr, "metadata", "consumerGroup") != "ucprelay" {
		t.Errorf("trigger %v", tr)
	}
	if _, set := at(t, m["Deployment"][0], "spec").(map[string]any)["replicas"]; set {
		t.Error("the Deployment sets replicas while KEDA scales it")
	}
	m = mustRender(t, "autoscaling.enabled=true", "autoscaling.maxReplicas=30", "kafka.partitions=8")
	if r := at(t, m["HorizontalPodAutoscaler"][0], "spec", "maxReplicas"); r != 8 {
		t.Errorf("HPA max %v with 8 partitions", r)
	}
	if _, err := render(t, "autoscaling.enabled=true", "keda.enabled=true"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("KEDA and HPA together: %v", err)
	}
}

// A configuration change rolls the pods out by default (checksum annotation); with
// rolloutOnConfigChange=false it does not, so a signing-key switch is reloaded in place.
func TestChartRolloutOnConfigChange(t *testing.T) {
	ann := func(sets ...string) map[string]any {
		a, _ := at(t, mustRender(t, sets...)["Deployment"][0], "spec", "template", "metadata", "annotations").(map[string]any)
		return a
	}
	if _, ok := ann()["checksum/config"]; !ok {
		t.Error("no checksum/config annotation by default")
	}
	if _, ok := ann("rolloutOnConfigChange=false")["checksum/config"]; ok {
		t.Error("checksum/config annotation with rolloutOnConfigChange=false")
	}
}

func TestChartSecrets(t *testing.T) {
	m := mustRender(t, "secret.existingSecret=relay-secrets")
	if len(m["Secret"]) != 0 {
		t.Error("a Secret rendered beside existingSecret")
	}
	vols := at(t, m["Deployment"][0], "spec", "template", "spec", "volumes").([]any)
	found := false
	for _, v := range vols {
		if s, ok := v.(map[string]any)["secret"].(map[string]any); ok && s["secretName"] == "relay-secrets" {
			found = true
		}
	}
	if !found {
		t.Errorf("existingSecret not mounted: %v", vols)
	}
	m = mustRender(t, "secret.create=true", "secret.data.google-api-key=k3y")
	if got := at(t, m["Secret"][0], "data", "google-api-key"); got != "azN5" {
		t.Errorf("secret data %v", got)
	}
	mounts := at(t, m["Deployment"][0], "spec", "template", "spec", "containers", 0, "volumeMounts").([]any)
	if len(mounts) != 2 || at(t, mounts[1], "mountPath") != "/var/run/secrets/ucprelay" {
		t.Errorf("secret not mounted: %v", mounts)
	}
}

// The ServiceMonitor scrapes /metrics; the Grafana dashboard is valid JSON whose every
// query names a metric the relay exports.
func TestChartMonitoring(t *testing.T) {
	m := mustRender(t, "serviceMonitor.enabled=true", "grafanaDashboard.enabled=true")
	if at(t, m["ServiceMonitor"][0], "spec", "endpoints", 0, "path") != "/metrics" {
		t.Error("ServiceMonitor does not scrape /metrics")
	}
	var dash map[string]any
	for _, cm := range m["ConfigMap"] {
		if js, ok := at(t, cm, "data").(map[string]any)["ucprelay.json"].(string); ok {
			if err := json.Unmarshal([]byte(js), &dash); err != nil {
				t.Fatalf("dashboard JSON: %v", err)
			}
			if at(t, cm, "metadata", "labels", "grafana_dashboard") != "1" {
				t.Error("dashboard ConfigMap lacks the grafana_dashboard label")
			}
		}
	}
	if dash == nil {
		t.Fatal("no dashboard ConfigMap")
	}
	src, err := os.ReadFile(filepath.Join("..", "internal", "relay", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, n := range regexp.MustCompile(`"(ucprelay\.[a-z_.]+)"`).FindAllStringSubmatch(string(src), -1) {
		exported = append(exported, strings.ReplaceAll(n[1], ".", "_"))
	}
	js, _ := json.Marshal(dash)
	used := regexp.MustCompile(`ucprelay_[a-z_]+`).FindAllString(string(js), -1)
	if len(used) < 10 {
		t.Fatalf("the dashboard queries only %d metrics", len(used))
	}
	for _, u := range used {
		ok := false
		for _, e := range exported {
			if u == e || strings.HasPrefix(u, e+"_") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the dashboard queries %s, which the relay does not export (%v)", u, exported)
		}
	}
}

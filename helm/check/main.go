// Command check renders the chart as helm would and validates what it renders, where helm itself cannot be installed
// (no Debian, NuGet or npm package has it). It follows helm 3's template engine: Go's text/template with the sprig
// functions (Debian's golang-github-masterminds-sprig-dev) minus env and expandenv, helm's include, tpl, required,
// toYaml, fromYaml, toJson, fromJson and lookup (empty, as in helm template), missingkey=zero and "<no value>" removed;
// values coalesced as helm does (defaults, then each -f file, null deleting a key) and checked against
// values.schema.json (gojsonschema, which helm used until 3.18); YAML through ghodss/yaml, the sigs.k8s.io/yaml of helm.
// docs/deploy.md says where it differs from helm.
//
// It writes manifests.yaml (every object, as helm template prints them), NOTES.txt and summary.json (the
// containers' environment and probes, and every PromQL expression of the alert rules and dashboards) into -out, and
// exits 1 naming every problem it found in the objects.
//
// Build and run offline, on Debian's packaged sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run helm/check/main.go -chart helm/audience -f values-demo.yaml -out /tmp/render
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
	"github.com/xeipuuv/gojsonschema"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// ChartMetadata is the part of helm's chart.Metadata that templates read as .Chart.
type ChartMetadata struct {
	APIVersion  string   `json:"apiVersion"`
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	AppVersion  string   `json:"appVersion"`
	Description string   `json:"description"`
	Type        string   `json:"type"`
	KubeVersion string   `json:"kubeVersion"`
	Keywords    []string `json:"keywords"`
	Home        string   `json:"home"`
}

// Files is helm's .Files: the chart's files outside templates/, by path.
type Files map[string][]byte

func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) GetBytes(name string) []byte { return f[name] }

func (f Files) Glob(pattern string) Files {
	matched := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			matched[name] = data
		}
	}
	return matched
}

func (f Files) Lines(name string) []string {
	if f[name] == nil {
		return []string{}
	}
	return strings.Split(string(f[name]), "\n")
}

func (f Files) AsConfig() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = string(data)
	}
	return toYAML(m)
}

// Capabilities is helm's .Capabilities, for the Kubernetes version helm template assumes.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions APIVersions
}

type KubeVersion struct{ Version, Major, Minor string }

func (k KubeVersion) String() string { return k.Version }

type APIVersions []string

func (a APIVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// coalesce merges src (lower priority) under dst (higher priority) as helm's chartutil.CoalesceTables does: maps merge
// key by key, a null in dst deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	if dst == nil {
		dst = map[string]interface{}{}
	}
	for key, value := range src {
		existing, present := dst[key]
		switch {
		case !present:
			dst[key] = value
		case existing == nil:
			delete(dst, key)
		default:
			if dm, ok := existing.(map[string]interface{}); ok {
				if sm, ok := value.(map[string]interface{}); ok {
					dst[key] = coalesce(dm, sm)
				}
			}
		}
	}
	for key, value := range dst {
		if value == nil {
			delete(dst, key)
		}
	}
	return dst
}

// mergeUser merges a later -f file over an earlier one, as helm's mergeMaps does.
func mergeUser(base, override map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if vm, ok := v.(map[string]interface{}); ok {
			if bm, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeUser(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func readYAMLMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return m, nil
}

type renderer struct {
	tmpl  *template.Template
	chart string
}

func (r *renderer) funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["fromYamlArray"] = fromYAMLArray
	f["toJson"] = toJSON
	f["fromJson"] = fromJSON
	f["fromJsonArray"] = fromJSONArray
	f["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, fmt.Errorf(warn)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, fmt.Errorf(warn)
		}
		return val, nil
	}
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	includeDepth := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		includeDepth[name]++
		defer func() { includeDepth[name]-- }()
		if includeDepth[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		var buf strings.Builder
		if err := r.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, vals interface{}) (string, error) {
		clone, err := r.tmpl.Clone()
		if err != nil {
			return "", err
		}
		t, err := clone.New("tpl").Option("missingkey=zero").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return f
}

type rendered struct {
	Source string
	Text   string
}

// render parses every file under templates/ into one set, as helm does, and executes each whose name does not start
// with "_", in name order.
func render(chartDir string, meta ChartMetadata, values map[string]interface{}, files Files, release map[string]interface{}) ([]rendered, string, error) {
	r := &renderer{chart: meta.Name}
	r.tmpl = template.New("gotpl").Option("missingkey=zero")
	r.tmpl.Funcs(r.funcs())
	var names []string
	templatesDir := filepath.Join(chartDir, "templates")
	err := filepath.Walk(templatesDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		name := path.Join(meta.Name, filepath.ToSlash(rel))
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, err := r.tmpl.New(name).Parse(string(data)); err != nil {
			return err
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	sort.Strings(names)
	capabilities := Capabilities{
		KubeVersion: KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"},
		APIVersions: APIVersions{"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"},
	}
	var out []rendered
	notes := ""
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		data := map[string]interface{}{
			"Values":       values,
			"Release":      release,
			"Chart":        meta,
			"Files":        files,
			"Capabilities": capabilities,
			"Template":     map[string]interface{}{"Name": name, "BasePath": path.Join(meta.Name, "templates")},
			"Subcharts":    map[string]interface{}{},
		}
		var buf strings.Builder
		if err := r.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
			return nil, "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if path.Base(name) == "NOTES.txt" {
			notes = text
			continue
		}
		out = append(out, rendered{Source: name, Text: text})
	}
	return out, notes, nil
}

var separator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// Object is one rendered Kubernetes object, as JSON-like maps.
type Object struct {
	Source string
	Text   string
	Data   map[string]interface{}
}

func (o Object) Kind() string { return str(o.Data, "kind") }
func (o Object) Name() string { return str(o.Data, "metadata", "name") }
func (o Object) ID() string   { return o.Kind() + "/" + o.Name() }

func get(m interface{}, keys ...string) interface{} {
	for _, k := range keys {
		mm, ok := m.(map[string]interface{})
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

func str(m interface{}, keys ...string) string {
	s, _ := get(m, keys...).(string)
	return s
}

func list(m interface{}, keys ...string) []interface{} {
	l, _ := get(m, keys...).([]interface{})
	return l
}

func dict(m interface{}, keys ...string) map[string]interface{} {
	d, _ := get(m, keys...).(map[string]interface{})
	return d
}

type checker struct {
	problems []string
	objects  []Object
}

func (c *checker) fail(o Object, format string, args ...interface{}) {
	c.problems = append(c.problems, fmt.Sprintf("%s (%s): %s", o.ID(), o.Source, fmt.Sprintf(format, args...)))
}

func (c *checker) find(kind, name string) *Object {
	for i := range c.objects {
		if c.objects[i].Kind() == kind && c.objects[i].Name() == name {
			return &c.objects[i]
		}
	}
	return nil
}

// workloads are the pod templates of Deployments and Jobs, with their owner.
type workload struct {
	Owner  Object
	Labels map[string]interface{}
	Spec   map[string]interface{}
}

func (c *checker) workloads() []workload {
	var w []workload
	for _, o := range c.objects {
		if o.Kind() == "Deployment" || o.Kind() == "Job" {
			w = append(w, workload{o, dict(o.Data, "spec", "template", "metadata", "labels"), dict(o.Data, "spec", "template", "spec")})
		}
	}
	return w
}

func matches(selector, labels map[string]interface{}) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// selected are the workloads a label selector (matchLabels and matchExpressions with In) selects.
func (c *checker) selected(matchLabels map[string]interface{}, expressions []interface{}) []workload {
	var out []workload
	for _, w := range c.workloads() {
		if matchesExpressions(matchLabels, expressions, w.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func matchesExpressions(matchLabels map[string]interface{}, expressions []interface{}, labels map[string]interface{}) bool {
	if len(matchLabels) == 0 && len(expressions) == 0 {
		return false
	}
	for k, v := range matchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range expressions {
		key, op := str(e, "key"), str(e, "operator")
		value, present := labels[key]
		in := false
		for _, v := range list(e, "values") {
			in = in || v == value
		}
		switch op {
		case "In":
			if !present || !in {
				return false
			}
		case "NotIn":
			if present && in {
				return false
			}
		case "Exists":
			if !present {
				return false
			}
		case "DoesNotExist":
			if present {
				return false
			}
		default:
			return false
		}
	}
	return true
}

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelValue       = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	labelName        = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	envName          = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	portName         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	duration         = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	quantity         = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
)

// kinds are the objects the chart may render, with their API version.
var kinds = map[string]string{
	"Deployment": "apps/v1", "Service": "v1", "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1",
	"ServiceAccount": "v1", "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
	"NetworkPolicy": "networking.k8s.io/v1", "ConfigMap": "v1", "Secret": "v1", "Job": "batch/v1",
	"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1",
}

func (c *checker) checkObject(o Object) {
	kind := o.Kind()
	if want, ok := kinds[kind]; !ok {
		c.fail(o, "kind %q is not one the chart is meant to render", kind)
		return
	} else if got := str(o.Data, "apiVersion"); got != want {
		c.fail(o, "apiVersion %q, expected %q", got, want)
	}
	name := o.Name()
	limit := 253
	if kind == "Service" || kind == "Deployment" {
		limit = 63
	}
	if name == "" || len(name) > limit || !dns1123Subdomain.MatchString(name) || (kind == "Service" && !dns1123Label.MatchString(name)) {
		c.fail(o, "metadata.name %q is not a valid name", name)
	}
	for k, v := range dict(o.Data, "metadata", "labels") {
		c.checkLabel(o, k, v)
	}
	switch kind {
	case "Deployment":
		c.checkDeployment(o)
	case "Job":
		spec := dict(o.Data, "spec", "template", "spec")
		if rp := str(spec, "restartPolicy"); rp != "Never" && rp != "OnFailure" {
			c.fail(o, "a Job's restartPolicy must be Never or OnFailure, not %q", rp)
		}
		c.checkPodSpec(o, spec)
	case "Service":
		c.checkService(o)
	case "HorizontalPodAutoscaler":
		ref := dict(o.Data, "spec", "scaleTargetRef")
		target := c.find(str(ref, "kind"), str(ref, "name"))
		if target == nil {
			c.fail(o, "scaleTargetRef %s/%s is not rendered", str(ref, "kind"), str(ref, "name"))
		} else if get(target.Data, "spec", "replicas") != nil {
			c.fail(o, "%s sets spec.replicas, which every upgrade would reset under the autoscaler", target.ID())
		}
		min, _ := get(o.Data, "spec", "minReplicas").(float64)
		max, _ := get(o.Data, "spec", "maxReplicas").(float64)
		if min < 1 || max < min {
			c.fail(o, "minReplicas %v and maxReplicas %v", min, max)
		}
		if len(list(o.Data, "spec", "metrics")) == 0 {
			c.fail(o, "no metrics")
		}
	case "PodDisruptionBudget":
		spec := dict(o.Data, "spec")
		if (spec["minAvailable"] == nil) == (spec["maxUnavailable"] == nil) {
			c.fail(o, "exactly one of minAvailable and maxUnavailable")
		}
		if len(c.selected(dict(spec, "selector", "matchLabels"), nil)) == 0 {
			c.fail(o, "its selector selects no pods of the chart")
		}
	case "Role":
		rules := list(o.Data, "rules")
		if len(rules) == 0 {
			c.fail(o, "no rules")
		}
		for _, r := range rules {
			if len(list(r, "verbs")) == 0 || len(list(r, "resources")) == 0 || list(r, "apiGroups") == nil {
				c.fail(o, "a rule needs apiGroups, resources and verbs")
			}
		}
	case "RoleBinding":
		ref := dict(o.Data, "roleRef")
		if str(ref, "apiGroup") != "rbac.authorization.k8s.io" || c.find(str(ref, "kind"), str(ref, "name")) == nil {
			c.fail(o, "roleRef %s/%s is not a rendered Role", str(ref, "kind"), str(ref, "name"))
		}
		subjects := list(o.Data, "subjects")
		if len(subjects) == 0 {
			c.fail(o, "no subjects")
		}
		for _, s := range subjects {
			if str(s, "kind") == "ServiceAccount" && str(s, "name") != "default" && c.find("ServiceAccount", str(s, "name")) == nil {
				c.fail(o, "subject ServiceAccount %q is not rendered", str(s, "name"))
			}
		}
	case "NetworkPolicy":
		c.checkNetworkPolicy(o)
	case "ConfigMap":
		for key, v := range dict(o.Data, "data") {
			text, ok := v.(string)
			if !ok {
				c.fail(o, "data.%s is not a string", key)
				continue
			}
			if strings.HasSuffix(key, ".json") && !json.Valid([]byte(text)) {
				c.fail(o, "data.%s is not valid JSON", key)
			}
		}
	case "Secret":
		if len(dict(o.Data, "stringData")) == 0 && len(dict(o.Data, "data")) == 0 {
			c.fail(o, "no data")
		}
	case "ServiceMonitor":
		selector := dict(o.Data, "spec", "selector")
		var services []Object
		for _, s := range c.objects {
			if s.Kind() == "Service" && matchesExpressions(dict(selector, "matchLabels"), list(selector, "matchExpressions"), dict(s.Data, "metadata", "labels")) {
				services = append(services, s)
			}
		}
		if len(services) == 0 {
			c.fail(o, "its selector selects no Service of the chart")
		}
		for _, e := range list(o.Data, "spec", "endpoints") {
			for _, s := range services {
				if !hasPort(list(s.Data, "spec", "ports"), str(e, "port")) {
					c.fail(o, "endpoint port %q is not a port of %s", str(e, "port"), s.ID())
				}
			}
			if !strings.HasPrefix(str(e, "path"), "/") {
				c.fail(o, "endpoint path %q", str(e, "path"))
			}
		}
	case "PrometheusRule":
		groups := list(o.Data, "spec", "groups")
		if len(groups) == 0 {
			c.fail(o, "no groups")
		}
		for _, g := range groups {
			for _, r := range list(g, "rules") {
				if str(r, "alert") == "" || strings.TrimSpace(str(r, "expr")) == "" {
					c.fail(o, "a rule needs alert and expr")
				}
				if f := str(r, "for"); f != "" && !duration.MatchString(f) {
					c.fail(o, "rule %s: for %q is not a duration", str(r, "alert"), f)
				}
			}
		}
	}
}

func (c *checker) checkLabel(o Object, k string, v interface{}) {
	s, ok := v.(string)
	if !ok {
		c.fail(o, "label %s is not a string", k)
		return
	}
	if !labelName.MatchString(k) || len(s) > 63 || !labelValue.MatchString(s) {
		c.fail(o, "label %s=%q is not valid", k, s)
	}
}

func hasPort(ports []interface{}, name string) bool {
	for _, p := range ports {
		if str(p, "name") == name {
			return true
		}
	}
	return false
}

func (c *checker) checkDeployment(o Object) {
	spec := dict(o.Data, "spec")
	selector := dict(spec, "selector", "matchLabels")
	labels := dict(spec, "template", "metadata", "labels")
	if !matches(selector, labels) {
		c.fail(o, "spec.selector.matchLabels %v does not select the pod template's labels %v", selector, labels)
	}
	for k, v := range labels {
		c.checkLabel(o, k, v)
	}
	// Orleans' Kubernetes hosting lists the silo pods by these labels, with the ids it reads from these variables.
	for _, ct := range list(spec, "template", "spec", "containers") {
		for _, e := range list(ct, "env") {
			label := map[string]string{"ORLEANS_SERVICE_ID": "orleans/serviceId", "ORLEANS_CLUSTER_ID": "orleans/clusterId"}[str(e, "name")]
			if label != "" && labels[label] != str(e, "value") {
				c.fail(o, "pod label %s is %v, but %s is %q", label, labels[label], str(e, "name"), str(e, "value"))
			}
		}
	}
	c.checkPodSpec(o, dict(spec, "template", "spec"))
}

func (c *checker) checkPodSpec(o Object, pod map[string]interface{}) {
	containers := list(pod, "containers")
	if len(containers) == 0 {
		c.fail(o, "no containers")
	}
	if sa := str(pod, "serviceAccountName"); sa != "" && sa != "default" && c.find("ServiceAccount", sa) == nil {
		c.fail(o, "serviceAccountName %q is not rendered", sa)
	}
	volumes := map[string]bool{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = true
		if cm := str(v, "configMap", "name"); cm != "" && c.find("ConfigMap", cm) == nil {
			c.fail(o, "volume %s: ConfigMap %q is not rendered", str(v, "name"), cm)
		}
		if sn := str(v, "secret", "secretName"); sn != "" && c.find("Secret", sn) == nil && !externalSecret(sn) {
			c.fail(o, "volume %s: Secret %q is neither rendered nor named in the values as existing", str(v, "name"), sn)
		}
	}
	podNonRoot, _ := get(pod, "securityContext", "runAsNonRoot").(bool)
	for _, ct := range containers {
		name := str(ct, "name")
		if name == "" || !dns1123Label.MatchString(name) || str(ct, "image") == "" {
			c.fail(o, "container %q needs a valid name and an image", name)
		}
		ports := map[string]bool{}
		numbers := map[float64]bool{}
		for _, p := range list(ct, "ports") {
			pn := str(p, "name")
			if pn != "" && (len(pn) > 15 || !portName.MatchString(pn) || ports[pn]) {
				c.fail(o, "container %s: port name %q", name, pn)
			}
			ports[pn] = true
			n, _ := get(p, "containerPort").(float64)
			if n < 1 || n > 65535 {
				c.fail(o, "container %s: containerPort %v", name, get(p, "containerPort"))
			}
			numbers[n] = true
		}
		seen := map[string]bool{}
		for _, e := range list(ct, "env") {
			en := str(e, "name")
			if !envName.MatchString(en) || seen[en] {
				c.fail(o, "container %s: env name %q is invalid or repeated", name, en)
			}
			seen[en] = true
			_, hasValue := e.(map[string]interface{})["value"]
			valueFrom := dict(e, "valueFrom")
			if hasValue == (valueFrom != nil) {
				c.fail(o, "container %s: env %s needs exactly one of value and valueFrom", name, en)
			}
			if hasValue {
				if _, ok := get(e, "value").(string); !ok {
					c.fail(o, "container %s: env %s's value is not a string", name, en)
				}
			}
			if ref := dict(valueFrom, "secretKeyRef"); valueFrom != nil && ref != nil && (str(ref, "name") == "" || str(ref, "key") == "") {
				c.fail(o, "container %s: env %s: secretKeyRef needs name and key", name, en)
			}
			if ref := dict(valueFrom, "secretKeyRef"); ref != nil && c.find("Secret", str(ref, "name")) == nil && !externalSecret(str(ref, "name")) {
				c.fail(o, "container %s: env %s: Secret %q is neither rendered nor named in the values as existing", name, en, str(ref, "name"))
			}
		}
		for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
			p := dict(ct, probe)
			if p == nil {
				continue
			}
			h := dict(p, "httpGet")
			if h == nil {
				c.fail(o, "container %s: %s is not an HTTP probe", name, probe)
				continue
			}
			if !strings.HasPrefix(str(h, "path"), "/") {
				c.fail(o, "container %s: %s path %q", name, probe, str(h, "path"))
			}
			switch port := get(h, "port").(type) {
			case string:
				if !ports[port] {
					c.fail(o, "container %s: %s port %q is not a port of the container", name, probe, port)
				}
			case float64:
				if !numbers[port] {
					c.fail(o, "container %s: %s port %v is not a port of the container", name, probe, port)
				}
			default:
				c.fail(o, "container %s: %s has no port", name, probe)
			}
		}
		for _, m := range list(ct, "volumeMounts") {
			if !volumes[str(m, "name")] {
				c.fail(o, "container %s: volumeMount %q has no volume", name, str(m, "name"))
			}
		}
		resources := dict(ct, "resources")
		for _, key := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
			parts := strings.Split(key, ".")
			q := get(resources, parts...)
			s, ok := q.(string)
			if !ok || !quantity.MatchString(s) {
				c.fail(o, "container %s: resources.%s is %v, not a quantity", name, key, q)
			}
		}
		sc := dict(ct, "securityContext")
		if ro, _ := sc["readOnlyRootFilesystem"].(bool); !ro {
			c.fail(o, "container %s: the root filesystem is not read-only", name)
		}
		if pe, ok := sc["allowPrivilegeEscalation"].(bool); !ok || pe {
			c.fail(o, "container %s: privilege escalation is not off", name)
		}
		if nr, ok := sc["runAsNonRoot"].(bool); !(podNonRoot || ok && nr) {
			c.fail(o, "container %s: does not run as non-root", name)
		}
	}
}

// existingSecrets are the Secrets the values name as made outside the chart.
var existingSecrets = map[string]bool{}

func externalSecret(name string) bool { return existingSecrets[name] }

func (c *checker) checkService(o Object) {
	selector := dict(o.Data, "spec", "selector")
	pods := c.selected(selector, nil)
	if len(pods) == 0 {
		c.fail(o, "its selector %v selects no pods of the chart", selector)
	}
	for _, p := range list(o.Data, "spec", "ports") {
		if str(p, "name") == "" || get(p, "port") == nil {
			c.fail(o, "a port needs a name and a port")
		}
		if target, ok := get(p, "targetPort").(string); ok {
			for _, w := range pods {
				found := false
				for _, ct := range list(w.Spec, "containers") {
					found = found || hasPort(list(ct, "ports"), target)
				}
				if !found {
					c.fail(o, "targetPort %q is not a port of %s's pods", target, w.Owner.ID())
				}
			}
		}
	}
}

func (c *checker) checkNetworkPolicy(o Object) {
	pods := c.selected(dict(o.Data, "spec", "podSelector", "matchLabels"), nil)
	if len(pods) == 0 {
		c.fail(o, "its podSelector selects no pods of the chart")
	}
	for _, rule := range list(o.Data, "spec", "ingress") {
		for _, p := range list(rule, "ports") {
			name, ok := get(p, "port").(string)
			if !ok {
				continue
			}
			for _, w := range pods {
				found := false
				for _, ct := range list(w.Spec, "containers") {
					found = found || hasPort(list(ct, "ports"), name)
				}
				if !found {
					c.fail(o, "ingress port %q is not a port of %s's pods", name, w.Owner.ID())
				}
			}
		}
		for _, peer := range list(rule, "from") {
			if sel := dict(peer, "podSelector", "matchLabels"); sel != nil && get(peer, "namespaceSelector") == nil && len(c.selected(sel, nil)) == 0 {
				c.fail(o, "ingress from podSelector %v selects no pods of the chart", sel)
			}
		}
	}
}

// Summary is what the .NET side checks against the service: environment variables, probes, PromQL.
type Summary struct {
	Objects    []string    `json:"objects"`
	Containers []Container `json:"containers"`
	PromQL     []Query     `json:"promql"`
	Notes      string      `json:"notes"`
}

type Container struct {
	Object    string           `json:"object"`
	Component string           `json:"component"`
	Name      string           `json:"name"`
	Image     string           `json:"image"`
	Env       []EnvVar         `json:"env"`
	Ports     map[string]int64 `json:"ports"`
	Probes    []Probe          `json:"probes"`
}

// EnvVar is a container's variable: its value, or where it comes from (a Secret's key, a field of the pod).
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	From  string `json:"from,omitempty"`
}

type Probe struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
	Port string `json:"port"`
}

type Query struct {
	Source string `json:"source"`
	Expr   string `json:"expr"`
}

func summarize(objects []Object, notes string) Summary {
	s := Summary{Notes: notes, Containers: []Container{}, PromQL: []Query{}}
	for _, o := range objects {
		s.Objects = append(s.Objects, o.ID())
		pod := dict(o.Data, "spec", "template")
		for _, ct := range list(pod, "spec", "containers") {
			c := Container{Object: o.ID(), Component: str(pod, "metadata", "labels", "app.kubernetes.io/component"), Name: str(ct, "name"),
				Image: str(ct, "image"), Env: []EnvVar{}, Ports: map[string]int64{}, Probes: []Probe{}}
			for _, e := range list(ct, "env") {
				v := EnvVar{Name: str(e, "name"), Value: str(e, "value")}
				if ref := dict(e, "valueFrom", "secretKeyRef"); ref != nil {
					v.From = "secret " + str(ref, "name") + "/" + str(ref, "key")
				} else if ref := dict(e, "valueFrom", "fieldRef"); ref != nil {
					v.From = "field " + str(ref, "fieldPath")
				}
				c.Env = append(c.Env, v)
			}
			for _, p := range list(ct, "ports") {
				n, _ := get(p, "containerPort").(float64)
				c.Ports[str(p, "name")] = int64(n)
			}
			for _, kind := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
				if h := dict(ct, kind, "httpGet"); h != nil {
					c.Probes = append(c.Probes, Probe{kind, str(h, "path"), fmt.Sprint(get(h, "port"))})
				}
			}
			s.Containers = append(s.Containers, c)
		}
		if o.Kind() == "PrometheusRule" {
			for _, g := range list(o.Data, "spec", "groups") {
				for _, r := range list(g, "rules") {
					s.PromQL = append(s.PromQL, Query{o.ID() + " " + str(r, "alert"), str(r, "expr")})
				}
			}
		}
		if o.Kind() == "ConfigMap" {
			for key, v := range dict(o.Data, "data") {
				text, _ := v.(string)
				var dashboard map[string]interface{}
				if !strings.HasSuffix(key, ".json") || json.Unmarshal([]byte(text), &dashboard) != nil || dashboard["panels"] == nil {
					continue
				}
				for _, p := range list(dashboard, "panels") {
					for _, t := range list(p, "targets") {
						s.PromQL = append(s.PromQL, Query{fmt.Sprintf("%s %s panel %q", o.ID(), key, str(p, "title")), str(t, "expr")})
					}
				}
				for _, v := range list(dashboard, "templating", "list") {
					if q := str(v, "query", "query"); q != "" {
						s.PromQL = append(s.PromQL, Query{fmt.Sprintf("%s %s variable %s", o.ID(), key, str(v, "name")), q})
					}
				}
			}
		}
	}
	return s
}

func main() {
	chartDir := flag.String("chart", "helm/audience", "the chart's folder")
	out := flag.String("out", "", "where to write manifests.yaml, NOTES.txt and summary.json")
	releaseName := flag.String("name", "audience", "the release's name")
	namespace := flag.String("namespace", "audience", "the release's namespace")
	var files valueFiles
	flag.Var(&files, "f", "a values file over the chart's (repeatable; later ones win), as helm's -f")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "-out is required")
		os.Exit(2)
	}
	if err := run(*chartDir, files, *releaseName, *namespace, *out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(chartDir string, valueFiles []string, releaseName, namespace, out string) error {
	var meta ChartMetadata
	chartYAML, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(chartYAML, &meta); err != nil {
		return fmt.Errorf("Chart.yaml: %v", err)
	}
	if meta.APIVersion != "v2" || meta.Name == "" || meta.Version == "" {
		return fmt.Errorf("Chart.yaml needs apiVersion v2, a name and a version")
	}
	defaults, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		m, err := readYAMLMap(f)
		if err != nil {
			return err
		}
		user = mergeUser(user, m)
	}
	values := coalesce(user, defaults)

	if schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json")); err == nil {
		result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewGoLoader(values))
		if err != nil {
			return fmt.Errorf("values.schema.json: %v", err)
		}
		if !result.Valid() {
			var b strings.Builder
			b.WriteString("values don't meet the specifications of the schema(s) in the following chart(s):\n" + meta.Name + ":\n")
			for _, e := range result.Errors() {
				b.WriteString("- " + e.String() + "\n")
			}
			return fmt.Errorf("%s", b.String())
		}
	}
	for _, name := range []interface{}{get(values, "postgres", "existingSecret"), get(values, "druid", "auth", "existingSecret"),
		get(values, "kafka", "saslPasswordSecret"), get(values, "kafka", "caSecret")} {
		if s, ok := name.(string); ok && s != "" {
			existingSecrets[s] = true
		}
	}

	chartFiles := Files{}
	err = filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "templates/") || strings.HasPrefix(rel, "charts/") || rel == "Chart.yaml" || rel == "values.yaml" ||
			rel == "values.schema.json" || rel == ".helmignore" {
			return nil
		}
		data, err := os.ReadFile(p)
		chartFiles[rel] = data
		return err
	})
	if err != nil {
		return err
	}
	release := map[string]interface{}{"Name": releaseName, "Namespace": namespace, "IsInstall": true, "IsUpgrade": false, "Revision": 1, "Service": "Helm"}
	manifests, notes, err := render(chartDir, meta, values, chartFiles, release)
	if err != nil {
		return err
	}

	c := &checker{}
	var all bytes.Buffer
	for _, m := range manifests {
		for _, doc := range separator.Split(m.Text, -1) {
			if strings.TrimSpace(doc) == "" || strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			data := map[string]interface{}{}
			if err := yaml.Unmarshal([]byte(doc), &data); err != nil {
				c.problems = append(c.problems, fmt.Sprintf("%s: not valid YAML: %v\n%s", m.Source, err, doc))
				continue
			}
			// helm's SplitManifests trims each document.
			doc = strings.TrimSpace(doc)
			o := Object{Source: m.Source, Text: doc, Data: data}
			if c.find(o.Kind(), o.Name()) != nil {
				c.problems = append(c.problems, fmt.Sprintf("%s (%s): rendered twice", o.ID(), m.Source))
			}
			c.objects = append(c.objects, o)
			fmt.Fprintf(&all, "---\n# Source: %s\n%s\n", m.Source, strings.TrimRight(doc, "\n"))
		}
	}
	for _, o := range c.objects {
		if str(o.Data, "kind") == "" || str(o.Data, "metadata", "name") == "" {
			c.problems = append(c.problems, fmt.Sprintf("%s: an object without kind or metadata.name", o.Source))
			continue
		}
		c.checkObject(o)
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "manifests.yaml"), all.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "NOTES.txt"), []byte(notes), 0o644); err != nil {
		return err
	}
	summary, _ := json.MarshalIndent(summarize(c.objects, notes), "", "  ")
	if err := os.WriteFile(filepath.Join(out, "summary.json"), summary, 0o644); err != nil {
		return err
	}
	if len(c.problems) > 0 {
		return fmt.Errorf("%d problem(s) in the rendered objects:\n%s", len(c.problems), strings.Join(c.problems, "\n"))
	}
	fmt.Printf("rendered %d objects from %s with %v: every check passed\n", len(c.objects), chartDir, valueFiles)
	return nil
}

var comment = regexp.MustCompile(`(?m)^\s*#.*$`)

func stripComments(s string) string { return comment.ReplaceAllString(s, "") }

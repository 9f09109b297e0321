package monitoring_test

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/fabrictelemetry/aggregator/monitoring"
	"github.com/fabrictelemetry/aggregator/queryapi"
)

// loadCompose loads docker-compose.yml with the compose-spec loader, the
// one docker compose itself uses: interpolation, extension fields and
// validation included; with profiles, as docker compose --profile does.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithName("fabric-telemetry"),
		cli.WithoutEnvironmentResolution,
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// wantServices are the services of the stack and the port each publishes
// (on the same port inside the container).
var wantServices = map[string]uint32{
	"simulator":    9001,
	"aggregator":   8080,
	"prometheus":   9090,
	"alertmanager": 9093,
	"grafana":      3000,
}

// kafkaServices are the services docker compose --profile kafka adds: the
// port each listens on inside the network and the host port it publishes.
var kafkaServices = map[string]struct{ port, published uint32 }{
	"kafka":         {19092, 9092},
	"publisher":     {8080, 8081},
	"replica-1":     {8080, 8082},
	"replica-2":     {8080, 8083},
	"partitioned-1": {8080, 8084},
	"partitioned-2": {8080, 8085},
}

// partitionedServices are the kafka profile's partitioned replicas, members
// of one consumer group.
var partitionedServices = []string{"partitioned-1", "partitioned-2"}

// TestCompose checks docker-compose.yml: the five services, their published
// ports, and that every file or directory it bind-mounts exists in the
// repository.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	if got := slices.Sorted(maps.Keys(p.Services)); len(got) != len(wantServices) {
		t.Errorf("services without a profile: %v, want the %d of the default stack", got, len(wantServices))
	}
	root := repoRoot(t)
	for name, port := range wantServices {
		svc, ok := p.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		published := slices.ContainsFunc(svc.Ports, func(pc types.ServicePortConfig) bool {
			return pc.Target == port && pc.Published == strconv.Itoa(int(port))
		})
		if !published {
			t.Errorf("service %s does not publish port %d: %+v", name, port, svc.Ports)
		}
	}
	binds := 0
	for name, svc := range p.Services {
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			binds++
			r, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(r, "..") {
				t.Errorf("service %s mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", name, r)
			}
		}
	}
	if binds < 5 {
		t.Errorf("found %d bind mounts; want prometheus.yml, the rules, alertmanager.yml, Grafana provisioning and dashboards", binds)
	}

	// The binaries are built from this repository by the Dockerfile and
	// told where to listen and what to poll.
	for _, name := range []string{"simulator", "aggregator"} {
		svc := p.Services[name]
		if svc.Build == nil || svc.Build.Dockerfile != "Dockerfile" {
			t.Errorf("service %s is not built from the Dockerfile", name)
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", "telemetry-"+name, "main.go")); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
	}
	agg := strings.Join(p.Services["aggregator"].Command, " ")
	for _, flag := range []string{"--web.listen-address=:8080", "--source.url=http://simulator:9001/counters"} {
		if !strings.Contains(agg, flag) {
			t.Errorf("aggregator command %q lacks %s", agg, flag)
		}
	}
	if sim := strings.Join(p.Services["simulator"].Command, " "); !strings.Contains(sim, "--web.listen-address=:9001") {
		t.Errorf("simulator command %q lacks --web.listen-address=:9001", sim)
	}
}

// TestComposeKafkaProfile checks docker compose --profile kafka: the
// default stack plus a single-node Kafka in KRaft mode, a publisher that
// polls the simulator and writes to the log, two replicas that follow the
// log and two partitioned replicas that share it in a consumer group;
// Prometheus finds the five aggregators in job fabric-aggregator, each with
// the instance its self-metrics name.
func TestComposeKafkaProfile(t *testing.T) {
	p := loadCompose(t, "kafka")
	for name := range wantServices {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("the kafka profile lacks the default service %s", name)
		}
	}
	for name, ports := range kafkaServices {
		svc, ok := p.Services[name]
		if !ok {
			t.Errorf("no service %s in the kafka profile", name)
			continue
		}
		if !slices.Equal(svc.Profiles, []string{"kafka"}) {
			t.Errorf("service %s has profiles %v, want [kafka]", name, svc.Profiles)
		}
		published := slices.ContainsFunc(svc.Ports, func(pc types.ServicePortConfig) bool {
			return pc.Published == strconv.Itoa(int(ports.published))
		})
		if !published {
			t.Errorf("service %s does not publish port %d: %+v", name, ports.published, svc.Ports)
		}
	}

	// Kafka: the official image, one node that is broker and controller,
	// listening where the aggregators look for it, one replica of the
	// internal topics (transactions need theirs).
	kafka := p.Services["kafka"]
	env := func(k string) string {
		if v := kafka.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image %s, want the official apache/kafka", kafka.Image)
	}
	for k, want := range map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
	} {
		if got := env(k); got != want {
			t.Errorf("kafka: %s=%q, want %q", k, got, want)
		}
	}
	broker := fmt.Sprintf("kafka:%d", kafkaServices["kafka"].port)
	if !strings.Contains(env("KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT://"+broker) {
		t.Errorf("kafka advertises %q, not %s to the other services", env("KAFKA_ADVERTISED_LISTENERS"), broker)
	}
	if id := env("CLUSTER_ID"); len(id) != 22 {
		t.Errorf("kafka: CLUSTER_ID %q is not a base64 UUID (22 characters)", id)
	}

	// The publisher polls the simulator and publishes; the replicas follow
	// the topic it writes. Each names itself as Prometheus will.
	const topic = "fabric-telemetry"
	pub := p.Services["publisher"].Command
	for _, flag := range []string{"--source.url=http://simulator:9001/counters", "--kafka.brokers=" + broker, "--kafka.topic=" + topic, "--kafka.publish", "--query.self-metrics-instance=publisher:8080"} {
		if !slices.Contains(pub, flag) {
			t.Errorf("publisher command %v lacks %s", pub, flag)
		}
	}
	for _, name := range []string{"replica-1", "replica-2"} {
		cmd := p.Services[name].Command
		for _, flag := range []string{"--source.url=kafka://" + broker + "/" + topic, "--query.self-metrics-instance=" + name + ":8080"} {
			if !slices.Contains(cmd, flag) {
				t.Errorf("%s command %v lacks %s", name, cmd, flag)
			}
		}
		if slices.ContainsFunc(cmd, func(a string) bool { return strings.HasPrefix(a, "--kafka.publish") }) {
			t.Errorf("%s publishes: %v", name, cmd)
		}
	}
	// The partitioned replicas: one group, each advertising the address
	// the others reach it at (its service name and the port it listens on)
	// and naming itself as Prometheus does.
	for _, name := range partitionedServices {
		cmd := p.Services[name].Command
		port := kafkaServices[name].port
		for _, flag := range []string{
			"--source.url=kafka://" + broker + "/" + topic + "?group=replicas",
			fmt.Sprintf("--web.listen-address=:%d", port),
			fmt.Sprintf("--web.external-url=http://%s:%d", name, port),
			fmt.Sprintf("--query.self-metrics-instance=%s:%d", name, port),
		} {
			if !slices.Contains(cmd, flag) {
				t.Errorf("%s command %v lacks %s", name, cmd, flag)
			}
		}
	}

	// Prometheus: the aggregators of the profile in job fabric-aggregator,
	// by DNS (no target without the profile), instance = service:8080.
	var cfg struct {
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
			RelabelConfigs []struct {
				SourceLabels []string `yaml:"source_labels"`
				TargetLabel  string   `yaml:"target_label"`
				Replacement  string   `yaml:"replacement"`
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus.yml", &cfg)
	var names []string
	relabeled := false
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != monitoring.Job {
			continue
		}
		for _, d := range sc.DNSSDConfigs {
			if d.Type != "A" || d.Port != 8080 {
				t.Errorf("prometheus.yml: DNS discovery %+v, want type A, port 8080", d)
			}
			names = append(names, d.Names...)
		}
		for _, r := range sc.RelabelConfigs {
			relabeled = relabeled || slices.Equal(r.SourceLabels, []string{"__meta_dns_name"}) && r.TargetLabel == "instance" && r.Replacement == "${1}:8080"
		}
	}
	slices.Sort(names)
	if want := []string{"partitioned-1", "partitioned-2", "publisher", "replica-1", "replica-2"}; !slices.Equal(names, want) {
		t.Errorf("prometheus.yml: job %s discovers %v, want %v", monitoring.Job, names, want)
	}
	if !relabeled {
		t.Errorf("prometheus.yml: job %s does not name the discovered aggregators service:8080", monitoring.Job)
	}
}

// TestComposeFlags runs each binary's --help and checks that every flag a
// service of docker-compose.yml (either profile) passes to it is one the
// binary accepts: a misspelt or removed flag would make the container exit
// at start.
func TestComposeFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries; skipped with -short")
	}
	p := loadCompose(t, "kafka")
	dir := t.TempDir()
	accepted := map[string]map[string]bool{}
	for _, name := range []string{"telemetry-aggregator", "telemetry-simulator"} {
		bin := filepath.Join(dir, name)
		build := exec.CommandContext(testContext(t), "go", "build", "-o", bin, "./cmd/"+name)
		build.Dir = repoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
		help, err := exec.Command(bin, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", name, err, help)
		}
		accepted["/usr/local/bin/"+name] = helpFlags(string(help))
	}
	for _, svcName := range slices.Sorted(maps.Keys(p.Services)) {
		svc := p.Services[svcName]
		if len(svc.Entrypoint) != 1 || accepted[svc.Entrypoint[0]] == nil {
			continue // not one of ours
		}
		flags := accepted[svc.Entrypoint[0]]
		for _, arg := range svc.Command {
			name, ok := strings.CutPrefix(arg, "--")
			if !ok {
				t.Errorf("service %s: argument %q is not a --flag", svcName, arg)
				continue
			}
			name, _, _ = strings.Cut(name, "=")
			if !flags[name] {
				t.Errorf("service %s: %s has no flag --%s", svcName, filepath.Base(svc.Entrypoint[0]), name)
			}
		}
	}
}

// helpFlags are the flags a kingpin --help lists, a boolean's --no- form
// included.
func helpFlags(help string) map[string]bool {
	flags := map[string]bool{}
	for _, m := range helpFlagRe.FindAllStringSubmatch(help, -1) {
		flags[m[2]] = true
		if m[1] != "" {
			flags["no-"+m[2]] = true
		}
	}
	return flags
}

// helpFlagRe finds the flag a --help line starts with ("  -h, --[no-]help",
// "      --web.listen-address=:8080"), not one a wrapped help text mentions.
var helpFlagRe = regexp.MustCompile(`(?m)^(?:  -\w, |      )--(\[no-\])?([a-z0-9][a-z0-9.-]*)`)

// mountTarget is where a service sees a repository path (relative to the
// root), or "" when it does not mount it.
func mountTarget(t *testing.T, svc types.ServiceConfig, repoPath string) string {
	t.Helper()
	want := filepath.Join(repoRoot(t), repoPath)
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == want {
			return v.Target
		}
	}
	return ""
}

// TestStackWiring checks that the configuration files point at each other
// the way the compose file mounts and names them: Prometheus reads the
// mounted config and rules and scrapes the aggregator service, Grafana's data
// sources reach Prometheus and the aggregator, and its dashboard provider
// reads the mounted dashboards.
func TestStackWiring(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)

	// Prometheus: --config.file is the mounted prometheus.yml; rule_files,
	// relative to it, land in the mounted prometheus/ directory.
	prom := p.Services["prometheus"]
	configTarget := mountTarget(t, prom, "prometheus.yml")
	if configTarget == "" || !slices.Contains(prom.Command, "--config.file="+configTarget) {
		t.Errorf("prometheus: --config.file is not the mounted prometheus.yml (%s): %v", configTarget, prom.Command)
	}
	rulesTarget := mountTarget(t, prom, "prometheus")
	var cfg struct {
		Global struct {
			ScrapeInterval model.Duration `yaml:"scrape_interval"`
		} `yaml:"global"`
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus.yml", &cfg)
	for _, rf := range cfg.RuleFiles {
		if _, err := os.Stat(filepath.Join(root, rf)); err != nil {
			t.Errorf("prometheus.yml: rule file %s: %v", rf, err)
		}
		inContainer := filepath.Join(filepath.Dir(configTarget), rf)
		if rulesTarget == "" || !strings.HasPrefix(inContainer, rulesTarget+"/") {
			t.Errorf("prometheus.yml: rule file %s is %s in the container, outside the mounted rules (%s)", rf, inContainer, rulesTarget)
		}
	}
	var aggTargets []string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "fabric-aggregator" {
			for _, s := range sc.StaticConfigs {
				aggTargets = append(aggTargets, s.Targets...)
			}
		}
	}
	if !slices.Equal(aggTargets, []string{"aggregator:8080"}) {
		t.Errorf("prometheus.yml: job fabric-aggregator scrapes %v, want [aggregator:8080]", aggTargets)
	}
	// The aggregator records its self-metrics for its query API as this
	// scrape records them: same job, instance and interval, so that a
	// dashboard finds the same series on either data source.
	if want := "--query.self-metrics-instance=" + strings.Join(aggTargets, ","); !slices.Contains(p.Services["aggregator"].Command, want) {
		t.Errorf("aggregator: command lacks %s: %v", want, p.Services["aggregator"].Command)
	}
	if queryapi.DefaultSelfMetricsJob != monitoring.Job || monitoring.Job != "fabric-aggregator" {
		t.Errorf("self-metrics job %q, scrape job %q", queryapi.DefaultSelfMetricsJob, monitoring.Job)
	}
	if cfg.Global.ScrapeInterval != model.Duration(queryapi.DefaultSelfMetricsInterval) {
		t.Errorf("prometheus.yml scrapes every %s, the aggregator records its self-metrics every %s", cfg.Global.ScrapeInterval, queryapi.DefaultSelfMetricsInterval)
	}
	var amTargets []string
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, s := range am.StaticConfigs {
			amTargets = append(amTargets, s.Targets...)
		}
	}
	for _, target := range append(aggTargets, amTargets...) {
		checkServiceAddress(t, "prometheus.yml", target)
	}
	if len(amTargets) == 0 {
		t.Error("prometheus.yml: no Alertmanager")
	}

	// Grafana: provisioning and dashboards where its provisioning says.
	graf := p.Services["grafana"]
	if got := mountTarget(t, graf, "grafana/provisioning"); got != "/etc/grafana/provisioning" {
		t.Errorf("grafana: provisioning mounted at %q, want /etc/grafana/provisioning", got)
	}
	var ds struct {
		Datasources []struct {
			Name     string         `yaml:"name"`
			Type     string         `yaml:"type"`
			URL      string         `yaml:"url"`
			JSONData map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/datasources.yml", &ds)
	wantDS := map[string]string{"Prometheus": "http://prometheus:9090", "Fabric aggregator": "http://aggregator:8080"}
	for _, d := range ds.Datasources {
		want, ok := wantDS[d.Name]
		if !ok {
			continue
		}
		delete(wantDS, d.Name)
		if d.Type != "prometheus" || d.URL != want {
			t.Errorf("data source %s: type %s at %s, want prometheus at %s", d.Name, d.Type, d.URL, want)
		}
		if d.JSONData["timeInterval"] != "10s" {
			t.Errorf("data source %s: timeInterval %v, want 10s (the poll and scrape interval)", d.Name, d.JSONData["timeInterval"])
		}
		u, err := url.Parse(d.URL)
		if err != nil {
			t.Fatal(err)
		}
		checkServiceAddress(t, "datasources.yml", u.Host)
	}
	for name := range wantDS {
		t.Errorf("datasources.yml: no data source %s", name)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/dashboards.yml", &prov)
	dashTarget := mountTarget(t, graf, "dashboards")
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != dashTarget {
		t.Errorf("grafana: dashboards mounted at %q, provider reads %+v", dashTarget, prov.Providers)
	}

	am := p.Services["alertmanager"]
	if target := mountTarget(t, am, "alertmanager/alertmanager.yml"); target == "" || !slices.Contains(am.Command, "--config.file="+target) {
		t.Errorf("alertmanager: --config.file is not the mounted alertmanager.yml (%s): %v", target, am.Command)
	}
}

// checkServiceAddress fails unless host:port names a compose service and a
// port it listens on.
func checkServiceAddress(t *testing.T, file, hostport string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %s: %v", file, hostport, err)
		return
	}
	want, ok := wantServices[host]
	if !ok {
		t.Errorf("%s: %s is not a compose service", file, host)
		return
	}
	if port != strconv.Itoa(int(want)) {
		t.Errorf("%s: %s listens on %d, not %s", file, host, want, port)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

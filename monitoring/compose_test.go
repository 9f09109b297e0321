package monitoring_test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
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
// validation included.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithName("fabric-telemetry"),
		cli.WithoutEnvironmentResolution,
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

// TestCompose checks docker-compose.yml: the five services, their published
// ports, and that every file or directory it bind-mounts exists in the
// repository.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
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

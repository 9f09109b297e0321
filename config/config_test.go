package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

var defaults = Source{
	Format:   FormatAuto,
	Interval: model.Duration(10 * time.Second),
	Timeout:  model.Duration(5 * time.Second),
	MaxBytes: 256 << 20,
}

func TestParseExample(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "example.yml"), defaults)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 2 {
		t.Fatalf("%d sources, want 2", len(cfg.Sources))
	}
	east, west := cfg.Sources[0], cfg.Sources[1]
	if east.Name != "east" || east.Format != FormatUFM || east.Shards != 4 || east.Labels["fabric"] != "east" {
		t.Errorf("east read as %+v", east)
	}
	if time.Duration(east.Interval) != 5*time.Second || east.MaxBytes != 512<<20 {
		t.Errorf("east interval %v, max_bytes %d", east.Interval, east.MaxBytes)
	}
	// west leaves everything but name and url to the defaults.
	if west.Format != defaults.Format || west.Interval != defaults.Interval || west.Timeout != defaults.Timeout ||
		west.MaxBytes != defaults.MaxBytes || west.Shards != 1 {
		t.Errorf("west did not take the defaults: %+v", west)
	}
}

func TestParseRejects(t *testing.T) {
	const good = "sources:\n- name: a\n  url: http://127.0.0.1:9001/counters\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"no sources", "sources: []\n", "no sources"},
		{"unknown field", good + "  intervall: 5s\n", "intervall"},
		{"not YAML", "sources: [\n", "parsing YAML"},
		{"bad name", strings.Replace(good, "name: a", "name: 'a b'", 1), "name must match"},
		{"duplicate name", good + "- name: a\n  url: http://127.0.0.1:9002/\n", "duplicate name"},
		{"bad url", strings.Replace(good, "http://127.0.0.1:9001/counters", "ftp://x/", 1), "not an http(s) URL"},
		{"bad format", good + "  format: json\n", "format"},
		{"bad interval", good + "  interval: soon\n", "parsing YAML"},
		{"negative shards", good + "  shards: -1\n", "shards"},
		{"too many shards", good + "  shards: 100000\n", "shards"},
		{"bad size", good + "  max_bytes: lots\n", "size"},
		{"bad label name", good + "  labels: {'1x': a}\n", "label name"},
		{"reserved label", good + "  labels: {switch_id: a}\n", "reserved"},
		{"label named like a REST key", good + "  labels: {metrics: a}\n", "reserved"},
		{"empty label value", good + "  labels: {fabric: ''}\n", "empty value"},
		{"negative sample limit", good + "  sample_limit: -1\n", "must not be negative"},
		{"negative column limit", good + "  column_limit: -1\n", "must not be negative"},
		{"negative label value length limit", good + "  label_value_length_limit: -1\n", "must not be negative"},
		{"bad clock skew", good + "  max_clock_skew: -1s\n", "parsing YAML"},
		{"unknown HTTP client field", good + "  tls_config: {ca_fil: ca.pem}\n", "ca_fil"},
		{"unknown basic_auth field", good + "  basic_auth: {usrname: u}\n", "usrname"},
		{"two kinds of credentials", good + "  basic_auth: {username: u, password: p}\n  bearer_token: t\n", "at most one of basic_auth"},
		{"proxy header without a proxy", good + "  proxy_connect_header: {X: [y]}\n", "proxy_url"},
		{"credentials in the url", strings.Replace(good, "http://", "http://u:p@", 1), "must not carry credentials"},
		{"redirect host without a port", good + "  redirect_hosts: [mirror.example]\n", "not host:port"},
		{"redirect host with a bad port", good + "  redirect_hosts: ['mirror.example:http']\n", "not host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), defaults)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestSourceLimits: a source's limits and clock skew are its own where it
// sets them, the flags' where it does not.
func TestSourceLimits(t *testing.T) {
	flags := defaults
	flags.SampleLimit, flags.ColumnLimit, flags.LabelValueLengthLimit = 10_000_000, 1000, 1024
	flags.MaxClockSkew = model.Duration(10 * time.Second)
	cfg, err := Parse([]byte(`sources:
- name: big
  url: http://127.0.0.1:9001/csv/metrics
  sample_limit: 50000000
  column_limit: 2000
  label_value_length_limit: 64
  max_clock_skew: 1m
- name: plain
  url: http://127.0.0.1:9002/counters
`), flags)
	if err != nil {
		t.Fatal(err)
	}
	big, plain := cfg.Sources[0], cfg.Sources[1]
	if big.SampleLimit != 50_000_000 || big.ColumnLimit != 2000 || big.LabelValueLengthLimit != 64 || time.Duration(big.MaxClockSkew) != time.Minute {
		t.Errorf("big read as %+v", big)
	}
	if plain.SampleLimit != flags.SampleLimit || plain.ColumnLimit != flags.ColumnLimit ||
		plain.LabelValueLengthLimit != flags.LabelValueLengthLimit || plain.MaxClockSkew != flags.MaxClockSkew {
		t.Errorf("plain did not take the flags' limits: %+v", plain)
	}
}

// TestParseHTTPClient: the HTTP client fields of a Prometheus scrape config
// are read inline in a source, file names relative to the config file;
// a source that gives none has Prometheus's defaults.
func TestParseHTTPClient(t *testing.T) {
	path := filepath.Join("testdata", "http_client.yml")
	cfg, err := Load(path, defaults)
	if err != nil {
		t.Fatal(err)
	}
	east, west := cfg.Sources[0].HTTPClientConfig, cfg.Sources[1].HTTPClientConfig
	if east.TLSConfig.CAFile != filepath.Join("testdata", "ufm-ca.pem") || east.BasicAuth == nil ||
		east.BasicAuth.Username != "telemetry" || east.BasicAuth.PasswordFile != filepath.Join("testdata", "ufm-east.password") {
		t.Errorf("east's TLS and basic auth read as %+v, %+v", east.TLSConfig, east.BasicAuth)
	}
	if west.Authorization == nil || west.Authorization.Type != "Bearer" || west.ProxyURL.String() != "http://proxy.example:3128" ||
		!west.FollowRedirects || !slices.Equal(cfg.Sources[1].RedirectHosts, []string{"ufm-west-mirror.example:9001"}) {
		t.Errorf("west's authorization, proxy and redirects read as %+v, %q, %v, %v",
			west.Authorization, west.ProxyURL.String(), west.FollowRedirects, cfg.Sources[1].RedirectHosts)
	}

	plain, err := Parse([]byte("sources:\n- name: a\n  url: http://127.0.0.1:9001/\n"), defaults)
	if err != nil {
		t.Fatal(err)
	}
	if c := plain.Sources[0].HTTPClientConfig; !c.FollowRedirects || !c.EnableHTTP2 {
		t.Errorf("a source without HTTP client fields: follow_redirects %v, enable_http2 %v; want Prometheus's defaults (true)",
			c.FollowRedirects, c.EnableHTTP2)
	}
	off, err := Parse([]byte("sources:\n- name: a\n  url: http://127.0.0.1:9001/\n  follow_redirects: false\n"), defaults)
	if err != nil {
		t.Fatal(err)
	}
	if off.Sources[0].HTTPClientConfig.FollowRedirects {
		t.Error("follow_redirects: false read as true")
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yml"), defaults); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v, want file not found", err)
	}
}

// FuzzParse checks that no file crashes the parser and that whatever it
// accepts is valid.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "example.yml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	httpClient, err := os.ReadFile(filepath.Join("testdata", "http_client.yml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(httpClient)
	f.Add([]byte("sources:\n- name: a\n  url: http://h/\n  shards: 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, defaults)
		if err != nil {
			return
		}
		for _, s := range cfg.Sources {
			if err := s.validate(); err != nil {
				t.Fatalf("accepted an invalid source %+v: %v", s, err)
			}
		}
	})
}

func TestSingle(t *testing.T) {
	good := Source{Name: "default", URL: "http://127.0.0.1:9001/counters", Format: FormatAuto,
		Interval: model.Duration(time.Second), Timeout: model.Duration(time.Second), MaxBytes: 1 << 20}
	cfg, err := Single(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0]; got.Shards != 1 || got.URL != good.URL || !got.HTTPClientConfig.FollowRedirects || !got.HTTPClientConfig.EnableHTTP2 {
		t.Errorf("Single = %+v, want shards defaulted to 1, the URL kept and Prometheus's HTTP client defaults", got)
	}
	bad := good
	bad.URL = "ftp://example/"
	if _, err := Single(bad); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
		t.Errorf("Single(ftp URL) = %v, want the URL refused", err)
	}
}

// TestKafkaSources: a kafka:// URL, in the file or in --source.url, makes a
// source read from the poll log: its brokers (IPv6 included) and topic are
// read from it, its interval is kept for readiness, and the settings that
// would change what the log holds are refused.
func TestKafkaSources(t *testing.T) {
	cfg, err := Parse([]byte(`sources:
- name: log
  url: kafka://127.0.0.1:9092,[::1]:9093,kafka-3.example:9094/fabric-telemetry
  interval: 5s
- name: east
  url: http://127.0.0.1:9001/counters
`), defaults)
	if err != nil {
		t.Fatal(err)
	}
	log, east := cfg.Sources[0], cfg.Sources[1]
	if !log.Kafka() || east.Kafka() {
		t.Errorf("Kafka(): log %v, east %v", log.Kafka(), east.Kafka())
	}
	u, err := ParseKafkaURL(log.URL)
	if err != nil || u.Topic != "fabric-telemetry" || u.Group != "" || !slices.Equal(u.Brokers, []string{"127.0.0.1:9092", "[::1]:9093", "kafka-3.example:9094"}) {
		t.Errorf("brokers %v, topic %q, group %q, %v", u.Brokers, u.Topic, u.Group, err)
	}
	u, err = ParseKafkaURL("kafka://127.0.0.1:9092/fabric-telemetry?group=fabric-east")
	if err != nil || u.Topic != "fabric-telemetry" || u.Group != "fabric-east" || !slices.Equal(u.Brokers, []string{"127.0.0.1:9092"}) {
		t.Errorf("with ?group=: brokers %v, topic %q, group %q, %v", u.Brokers, u.Topic, u.Group, err)
	}
	if time.Duration(log.Interval) != 5*time.Second {
		t.Errorf("interval %v", log.Interval)
	}
	single, err := Single(Source{Name: "default", URL: "KAFKA://127.0.0.1:9092/polls", Interval: defaults.Interval})
	if err != nil || !single.Sources[0].Kafka() {
		t.Errorf("--source.url=kafka://…: %v", err)
	}

	const good = "sources:\n- name: a\n  url: kafka://127.0.0.1:9092/polls\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"no topic", strings.Replace(good, "/polls", "", 1), "not a Kafka topic name"},
		{"bad topic", strings.Replace(good, "/polls", "/po lls", 1), "not a Kafka topic name"},
		{"a path", strings.Replace(good, "/polls", "/polls/x", 1), "not a Kafka topic name"},
		{"no port", strings.Replace(good, ":9092", "", 1), "not HOST:PORT"},
		{"empty broker", strings.Replace(good, "9092/", "9092,/", 1), "not HOST:PORT"},
		{"credentials", strings.Replace(good, "kafka://", "kafka://u:p@", 1), "not HOST:PORT"},
		{"empty group", strings.Replace(good, "/polls", "/polls?group=", 1), "group must be given once"},
		{"two groups", strings.Replace(good, "/polls", "/polls?group=a&group=b", 1), "group must be given once"},
		{"bad group", strings.Replace(good, "/polls", "/polls?group=a%20b", 1), "group must be given once"},
		{"other parameter", strings.Replace(good, "/polls", "/polls?group=a&offset=0", 1), `unknown parameter "offset"`},
		{"bad query", strings.Replace(good, "/polls", "/polls?group=%zz", 1), "invalid URL escape"},
		{"shards", good + "  shards: 2\n", "shards do not apply"},
		{"labels", good + "  labels: {fabric: east}\n", "labels do not apply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), defaults)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

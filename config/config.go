// Package config reads the aggregator's source file (--config.file): the
// telemetry sources to poll, each with its own URL, format, schedule, shards
// and extra labels. Flags stay enough for one source; the file is for
// several fabrics, or several UFM shards of one.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/units"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Formats a source may declare.
const (
	FormatAuto   = "auto"   // told from the header
	FormatMatrix = "matrix" // the switch matrix: switch_id[,port],timestamp,...
	FormatUFM    = "ufm"    // UFM Telemetry CSV: timestamp,source_id,tag,node_guid,port_guid,port_num,node_description,...
)

// MaxShards bounds the parallel fetches of one source.
const MaxShards = 256

// Config is the whole file.
type Config struct {
	Sources []Source `yaml:"sources"`
}

// Source is one telemetry endpoint.
type Source struct {
	// Name identifies the source in logs and in the source label of the
	// self-metrics.
	Name string `yaml:"name"`
	// URL is the source's CSV over http(s), or a poll log to follow:
	// kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=NAME] (see Kafka).
	URL string `yaml:"url"`
	// HTTPClientConfig is how the source is reached, with the fields of a
	// Prometheus scrape config inline: tls_config, basic_auth,
	// authorization, bearer_token(_file), oauth2, proxy_url and the other
	// proxy settings, follow_redirects, enable_http2, http_headers. Its
	// zero value follows no redirects; Parse and Single start from
	// Prometheus's defaults (promconfig.DefaultHTTPClientConfig).
	HTTPClientConfig promconfig.HTTPClientConfig `yaml:",inline"`
	// RedirectHosts are the host:port pairs, besides the source URL's own
	// scheme, host and port, that a redirect may lead to.
	RedirectHosts []string `yaml:"redirect_hosts,omitempty"`
	// Format is auto, matrix or ufm.
	Format   string         `yaml:"format,omitempty"`
	Interval model.Duration `yaml:"interval,omitempty"`
	Timeout  model.Duration `yaml:"timeout,omitempty"`
	MaxBytes Bytes          `yaml:"max_bytes,omitempty"`
	// Shards > 1 polls the source as that many UFM shards in parallel
	// (?num_shards=N&shard=i) and merges them into one snapshot.
	Shards int `yaml:"shards,omitempty"`
	// Limits of one poll, named as Prometheus's scrape limits: values
	// (rows × metric columns), header columns, bytes of a label value. A
	// poll over one is rejected with reason limit. 0 here takes the flag's
	// value; 0 there is no limit.
	SampleLimit           int `yaml:"sample_limit,omitempty"`
	ColumnLimit           int `yaml:"column_limit,omitempty"`
	LabelValueLengthLimit int `yaml:"label_value_length_limit,omitempty"`
	// MaxClockSkew is how far ahead of the poll time the source's time may
	// be; a snapshot further ahead is stamped with the poll time. 0 here
	// takes the flag's value; 0 there never clamps.
	MaxClockSkew model.Duration `yaml:"max_clock_skew,omitempty"`
	// Labels are added to every series of the source, e.g. fabric: east.
	Labels map[string]string `yaml:"labels,omitempty"`
}

// UnmarshalYAML starts a source from Prometheus's HTTP client defaults
// (follow_redirects and enable_http2 on), which a bool field left out of the
// file cannot say. It takes the older form of the interface because that
// form decodes with the file's own decoder, which refuses unknown fields.
func (s *Source) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Source
	*s = Source{HTTPClientConfig: promconfig.DefaultHTTPClientConfig}
	return unmarshal((*plain)(s))
}

// Bytes is a size such as 256MiB.
type Bytes int64

// UnmarshalYAML reads a size with a binary unit suffix, or a plain number.
func (b *Bytes) UnmarshalYAML(node *yaml.Node) error {
	var s string
	if err := node.Decode(&s); err != nil {
		return err
	}
	n, err := units.ParseBase2Bytes(s)
	if err != nil {
		return fmt.Errorf("size %q: %w", s, err)
	}
	*b = Bytes(n)
	return nil
}

// Load reads and checks a config file. Fields a source leaves out are taken
// from defaults (the flag values).
func Load(path string, defaults Source) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	cfg, err := Parse(data, defaults)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	for i := range cfg.Sources {
		// Relative certificate, key, password and token files are the
		// file's neighbours, as in Prometheus.
		cfg.Sources[i].HTTPClientConfig.SetDirectory(filepath.Dir(path))
	}
	return cfg, nil
}

// Parse decodes a config strictly: unknown fields are errors, so a typo does
// not silently fall back to a default.
func Parse(data []byte, defaults Source) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("no sources")
	}
	seen := map[string]bool{}
	for i := range cfg.Sources {
		s := &cfg.Sources[i]
		s.fillDefaults(defaults)
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("source %d (%q): %w", i+1, s.Name, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("source %d: duplicate name %q", i+1, s.Name)
		}
		seen[s.Name] = true
	}
	return &cfg, nil
}

// Single is the configuration of one source given by flags alone, checked
// like a file's. No flag sets an HTTP client field: the source gets
// Prometheus's defaults.
func Single(s Source) (*Config, error) {
	s.HTTPClientConfig = promconfig.DefaultHTTPClientConfig
	s.fillDefaults(Source{})
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("source %q: %w", s.Name, err)
	}
	return &Config{Sources: []Source{s}}, nil
}

func (s *Source) fillDefaults(d Source) {
	if s.Format == "" {
		s.Format = d.Format
	}
	if s.Interval == 0 {
		s.Interval = d.Interval
	}
	if s.Timeout == 0 {
		s.Timeout = d.Timeout
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = d.MaxBytes
	}
	if s.Shards == 0 {
		s.Shards = 1
	}
	if s.SampleLimit == 0 {
		s.SampleLimit = d.SampleLimit
	}
	if s.ColumnLimit == 0 {
		s.ColumnLimit = d.ColumnLimit
	}
	if s.LabelValueLengthLimit == 0 {
		s.LabelValueLengthLimit = d.LabelValueLengthLimit
	}
	if s.MaxClockSkew == 0 {
		s.MaxClockSkew = d.MaxClockSkew
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// reservedLabels are set by the aggregator itself.
// value and metrics are keys of the REST answers' per-port and per-row
// entries, which carry a row's labels beside them.
var reservedLabels = map[string]bool{
	"switch_id": true, "port": true, "node_guid": true, "source": true, "job": true, "instance": true,
	"value": true, "metrics": true,
}

func (s *Source) validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("name must match %s", nameRE)
	}
	if s.Kafka() {
		return s.validateKafka()
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is not an http(s) URL", s.URL)
	}
	if u.User != nil {
		// It would be logged with the URL. (A kafka:// URL has no room
		// for credentials either: they come from --kafka.sasl.*.)
		return errors.New("url must not carry credentials: use basic_auth or authorization")
	}
	if err := s.HTTPClientConfig.Validate(); err != nil {
		return err
	}
	for _, h := range s.RedirectHosts {
		host, port, err := net.SplitHostPort(h)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("redirect_hosts: %q is not host:port", h)
		}
	}
	switch s.Format {
	case FormatAuto, FormatMatrix, FormatUFM:
	default:
		return fmt.Errorf("format %q is not one of auto, matrix, ufm", s.Format)
	}
	switch {
	case time.Duration(s.Interval) <= 0:
		return errors.New("interval must be positive")
	case time.Duration(s.Timeout) <= 0:
		return errors.New("timeout must be positive")
	case s.MaxBytes <= 0:
		return errors.New("max_bytes must be positive")
	case s.Shards < 1 || s.Shards > MaxShards:
		return fmt.Errorf("shards must be between 1 and %d", MaxShards)
	case s.SampleLimit < 0, s.ColumnLimit < 0, s.LabelValueLengthLimit < 0:
		return errors.New("sample_limit, column_limit and label_value_length_limit must not be negative (0: no limit)")
	case s.MaxClockSkew < 0:
		return errors.New("max_clock_skew must not be negative (0: never clamp)")
	}
	for name, value := range s.Labels {
		if !model.LegacyValidation.IsValidLabelName(name) || len(name) >= 2 && name[:2] == "__" {
			return fmt.Errorf("label name %q is not a valid Prometheus label name", name)
		}
		if reservedLabels[name] {
			return fmt.Errorf("label %q is reserved (set by the aggregator, or a key of the REST answers)", name)
		}
		if value == "" {
			return fmt.Errorf("label %q has an empty value", name)
		}
	}
	return nil
}

// KafkaScheme is the URL scheme of a source read from the poll log.
const KafkaScheme = "kafka"

// Kafka reports whether the source is read from the poll log, a
// kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=NAME] URL, rather than
// polled over HTTP.
func (s *Source) Kafka() bool {
	return strings.HasPrefix(strings.ToLower(s.URL), KafkaScheme+"://")
}

// KafkaURL is a kafka:// source URL, read.
type KafkaURL struct {
	Brokers []string
	Topic   string
	// Group, from ?group=NAME, makes the aggregator a partitioned replica:
	// a member of this consumer group, holding only the switches of the
	// partitions the group assigns it. Empty: it reads every partition.
	Group string
}

// ParseKafkaURL reads a kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=NAME]
// URL. (net/url cannot read a host list with IPv6 addresses, so it is
// split here.)
func ParseKafkaURL(raw string) (KafkaURL, error) {
	const prefix = KafkaScheme + "://"
	if len(raw) < len(prefix) || !strings.EqualFold(raw[:len(prefix)], prefix) {
		return KafkaURL{}, fmt.Errorf("url %q is not a kafka:// URL", raw)
	}
	hosts, rest, _ := strings.Cut(raw[len(prefix):], "/")
	var u KafkaURL
	for b := range strings.SplitSeq(hosts, ",") {
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return KafkaURL{}, fmt.Errorf("url %q: broker %q is not HOST:PORT", raw, b)
		}
		u.Brokers = append(u.Brokers, b)
	}
	topic, query, hasQuery := strings.Cut(rest, "?")
	if !topicRE.MatchString(topic) {
		return KafkaURL{}, fmt.Errorf("url %q: topic %q is not a Kafka topic name (%s)", raw, topic, topicRE)
	}
	u.Topic = topic
	if !hasQuery {
		return u, nil
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return KafkaURL{}, fmt.Errorf("url %q: %w", raw, err)
	}
	for name, values := range params {
		if name != "group" {
			return KafkaURL{}, fmt.Errorf("url %q: unknown parameter %q (the only one is group)", raw, name)
		}
		if len(values) != 1 || !groupRE.MatchString(values[0]) {
			return KafkaURL{}, fmt.Errorf("url %q: group must be given once, a name of %s", raw, groupRE)
		}
		u.Group = values[0]
	}
	return u, nil
}

// topicRE is what Kafka allows in a topic name; groupRE what a group name
// may be here (Kafka allows any string: these need no quoting in a URL, a
// log line or a metric).
var (
	topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	groupRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
)

// validateKafka checks a source read from the poll log. The settings of
// an HTTP poll (format, timeout, max_bytes, limits, the HTTP client) do
// not apply and are ignored; shards and labels would change what the log
// holds, so they are refused: the publisher's labels come with its polls.
// The interval is how often polls are expected, for readiness.
func (s *Source) validateKafka() error {
	if _, err := ParseKafkaURL(s.URL); err != nil {
		return err
	}
	switch {
	case time.Duration(s.Interval) <= 0:
		return errors.New("interval must be positive")
	case s.Shards > 1:
		return errors.New("shards do not apply to a kafka:// source: the publisher's polls are whole")
	case len(s.Labels) > 0:
		return errors.New("labels do not apply to a kafka:// source: set them on the aggregator that publishes the polls")
	}
	return nil
}

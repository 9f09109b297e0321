package kafkalog

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	promconfig "github.com/prometheus/common/config"
)

// DefaultTopic is the poll log's topic unless told otherwise.
const DefaultTopic = "fabric-telemetry"

// Options are the --kafka.* settings of a command line: where the brokers
// are, how to reach them, and what to publish.
type Options struct {
	// Brokers is --kafka.brokers, HOST:PORT[,HOST:PORT...]: the brokers
	// polls are published to. A kafka:// source names its own.
	Brokers string
	Topic   string
	// Publish writes every accepted poll of every HTTP source to Topic.
	Publish bool
	// Source names the simulator's polls in the log.
	Source            string
	Partitions        int
	ReplicationFactor int
	SessionTimeout    time.Duration
	TLS               TLSOptions
	SASL              SASLOptions
}

// TLSOptions are the --kafka.tls.* flags.
type TLSOptions struct {
	Enable             bool
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
}

// SASLOptions are the --kafka.sasl.* flags.
type SASLOptions struct {
	Mechanism    string
	Username     string
	PasswordFile string
}

// AddFlags registers the aggregator's --kafka.* flags and returns the
// options they fill.
func AddFlags(app *kingpin.Application) *Options {
	o := &Options{}
	addTarget(app, o)
	app.Flag("kafka.publish", "Write every accepted poll of every HTTP source (the snapshot as served, with its labels) to --kafka.topic, one Kafka transaction per poll, for aggregators with a kafka:// source to follow. Of several aggregators publishing one source, one writes and the others stand by. See docs/scale-out.md.").
		BoolVar(&o.Publish)
	addPartitions(app, o)
	app.Flag("kafka.replication-factor", "Replication factor of the topics a publisher creates when they are missing; 0 means 3, or the number of brokers when fewer.").
		Default("0").IntVar(&o.ReplicationFactor)
	app.Flag("kafka.session-timeout", "Session timeout of the aggregator's Kafka groups: how long a member may go silent before the group gives its share to the others. The publishers' lease group: a standby publisher of a source takes over within it once the active one dies. The partitioned replicas' group (a kafka://…?group= source): a replica killed without warning has its partitions taken over by the others after it, plus their replay. Heartbeats go every tenth of it. Must lie within the brokers' group.min.session.timeout.ms and group.max.session.timeout.ms.").
		Default(DefaultSessionTimeout.String()).DurationVar(&o.SessionTimeout)
	app.Flag("kafka.tls.enable", "Talk TLS to the brokers (the publisher's and every kafka:// source's).").
		BoolVar(&o.TLS.Enable)
	app.Flag("kafka.tls.ca-file", "CA certificates (PEM) to verify the brokers with; the system's when empty.").
		StringVar(&o.TLS.CAFile)
	app.Flag("kafka.tls.cert-file", "Client certificate (PEM) for brokers that require one; with --kafka.tls.key-file.").
		StringVar(&o.TLS.CertFile)
	app.Flag("kafka.tls.key-file", "Key (PEM) of --kafka.tls.cert-file.").
		StringVar(&o.TLS.KeyFile)
	app.Flag("kafka.tls.server-name", "Name to verify the brokers' certificates against, when not their host names.").
		StringVar(&o.TLS.ServerName)
	app.Flag("kafka.tls.insecure-skip-verify", "Do not verify the brokers' certificates (testing only).").
		BoolVar(&o.TLS.InsecureSkipVerify)
	app.Flag("kafka.sasl.mechanism", "SASL mechanism to authenticate to the brokers with: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: none. PLAIN sends the password as is: use it with --kafka.tls.enable.").
		EnumVar(&o.SASL.Mechanism, "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
	app.Flag("kafka.sasl.username", "SASL user name.").
		StringVar(&o.SASL.Username)
	app.Flag("kafka.sasl.password-file", "File holding the SASL password (a trailing newline is ignored).").
		StringVar(&o.SASL.PasswordFile)
	return o
}

// AddProducerFlags registers the simulator's --kafka.* flags: its
// snapshots go straight to the topic when --kafka.brokers is set.
func AddProducerFlags(app *kingpin.Application) *Options {
	o := &Options{}
	addTarget(app, o)
	app.Flag("kafka.source", "Source name of the simulator's polls in the log: an aggregator following the topic serves them as a source of this name.").
		Default("simulator").StringVar(&o.Source)
	addPartitions(app, o)
	o.SessionTimeout = DefaultSessionTimeout
	return o
}

func addTarget(app *kingpin.Application, o *Options) {
	app.Flag("kafka.brokers", "Kafka brokers to publish polls to, HOST:PORT[,HOST:PORT...]; empty: no poll log.").
		StringVar(&o.Brokers)
	app.Flag("kafka.topic", "Topic of the poll log.").
		Default(DefaultTopic).StringVar(&o.Topic)
}

func addPartitions(app *kingpin.Application, o *Options) {
	app.Flag("kafka.partitions", "Partitions of the poll log's topic when the publisher creates it (an existing topic keeps its own). A switch's rows always go to the same partition.").
		Default(strconv.Itoa(DefaultPartitions)).IntVar(&o.Partitions)
}

// BrokerList returns --kafka.brokers as a list, checked.
func (o *Options) BrokerList() ([]string, error) {
	return ParseBrokers(o.Brokers)
}

// ParseBrokers splits HOST:PORT[,HOST:PORT...] and checks each address.
func ParseBrokers(s string) ([]string, error) {
	var out []string
	for b := range strings.SplitSeq(s, ",") {
		b = strings.TrimSpace(b)
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("broker %q is not HOST:PORT", b)
		}
		out = append(out, b)
	}
	return out, nil
}

// Conn returns the connection settings to brokers, with the TLS and SASL
// of the options: the certificate files are read and the password file is
// read now, so that a mistake stops the start-up rather than every
// connection.
func (o *Options) Conn(brokers []string) (Conn, error) {
	c := Conn{Brokers: brokers}
	t := o.TLS
	if !t.Enable && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		return Conn{}, errors.New("--kafka.tls.* settings without --kafka.tls.enable")
	}
	if t.Enable {
		cfg, err := promconfig.NewTLSConfig(&promconfig.TLSConfig{
			CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
			ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify,
		})
		if err != nil {
			return Conn{}, fmt.Errorf("TLS settings of the brokers: %w", err)
		}
		c.TLS = cfg
	}
	s := o.SASL
	switch {
	case s.Mechanism == "" && (s.Username != "" || s.PasswordFile != ""):
		return Conn{}, errors.New("--kafka.sasl.username or --kafka.sasl.password-file without --kafka.sasl.mechanism")
	case s.Mechanism == "":
		return c, nil
	case s.Username == "" || s.PasswordFile == "":
		return Conn{}, errors.New("--kafka.sasl.mechanism needs --kafka.sasl.username and --kafka.sasl.password-file")
	}
	password, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return Conn{}, fmt.Errorf("SASL password file: %w", err)
	}
	c.SASL, err = SASLMechanism(s.Mechanism, s.Username, strings.TrimRight(string(password), "\r\n"))
	if err != nil {
		return Conn{}, err
	}
	return c, nil
}

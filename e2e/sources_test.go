package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigFileSources runs the real aggregator with --config.file over two
// real simulators: east serves per-port UFM data, west the switch matrix,
// each with a fabric label. When west starts failing, east keeps updating,
// west's last good series stay served, and the self-metrics say which
// source is down.
func TestConfigFileSources(t *testing.T) {
	east := StartSimulator(t, "--switches=6", "--ports=4", "--interval=100ms", "--incident-rate=0")
	west := StartSimulator(t, "--switches=5", "--interval=100ms", "--incident-rate=0")
	configFile := filepath.Join(t.TempDir(), "sources.yml")
	config := fmt.Sprintf(`sources:
  - name: east
    url: %s/csv/metrics
    format: ufm
    shards: 2
    labels: {fabric: east}
  - name: west
    url: %s/counters
    labels: {fabric: west}
`, east.URL, west.URL)
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	agg := StartAggregator(t, "--config.file="+configFile, "--source.interval=50ms", "--source.timeout=2s")
	WaitReady(t, agg, 30*time.Second)

	Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		series, err := scrapeSeries(agg.URL)
		if err != nil {
			return err
		}
		for _, want := range []string{
			`fabric_source_up{source="east"} 1`,
			`fabric_source_up{source="west"} 1`,
		} {
			if !series.hasLine(want) {
				return fmt.Errorf("no %s", want)
			}
		}
		if series.count("fabric_port_", `fabric="east"`) == 0 || series.count("fabric_switch_", `fabric="west"`) == 0 {
			return fmt.Errorf("east's port series or west's switch series missing")
		}
		return nil
	})

	SetMode(t, west, "ERROR_500")
	var westBefore map[string]string
	Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		series, err := scrapeSeries(agg.URL)
		if err != nil {
			return err
		}
		if !series.hasLine(`fabric_source_up{source="west"} 0`) {
			return fmt.Errorf("west not reported down yet")
		}
		westBefore = series.matching("fabric_switch_", `fabric="west"`)
		return nil
	})
	eastBefore, err := scrapeSeries(agg.URL)
	if err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		series, err := scrapeSeries(agg.URL)
		if err != nil {
			return err
		}
		if !series.hasLine(`fabric_source_up{source="east"} 1`) {
			return fmt.Errorf("east reported down")
		}
		changed := 0
		for key, value := range series.matching("fabric_port_transmit_packets_total", `fabric="east"`) {
			if eastBefore[key] != value {
				changed++
			}
		}
		if changed == 0 {
			return fmt.Errorf("east's counters have not moved while west fails")
		}
		westNow := series.matching("fabric_switch_", `fabric="west"`)
		if len(westNow) != len(westBefore) {
			return fmt.Errorf("west had %d series, now %d", len(westBefore), len(westNow))
		}
		for key, value := range westBefore {
			if westNow[key] != value {
				return fmt.Errorf("west's %s changed from %s to %s while it fails", key, value, westNow[key])
			}
		}
		return nil
	})

	// The seed's REST call still answers from west's last good part.
	r := Get(t, agg.URL+"/telemetry/GetMetric?switch_id=SW-01&metric_name=Latency_Avg_uSec")
	if r.Status != 200 {
		t.Errorf("GetMetric of a failing source's switch: %d %s", r.Status, r.Body)
	}
}

// series is one scrape of /metrics: series (name and labels) to value.
type series map[string]string

func scrapeSeries(base string) (series, error) {
	r, err := TryDo(context.Background(), "GET", base+"/metrics")
	if err != nil {
		return nil, err
	}
	if r.Status != 200 {
		return nil, fmt.Errorf("/metrics: %d", r.Status)
	}
	out := series{}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out, sc.Err()
}

func (s series) hasLine(line string) bool {
	i := strings.LastIndexByte(line, ' ')
	v, ok := s[line[:i]]
	return ok && v == line[i+1:]
}

// matching returns the series whose name starts with prefix and whose
// labels contain label.
func (s series) matching(prefix, label string) map[string]string {
	out := map[string]string{}
	for key, value := range s {
		if strings.HasPrefix(key, prefix) && strings.Contains(key, label) {
			out[key] = value
		}
	}
	return out
}

func (s series) count(prefix, label string) int { return len(s.matching(prefix, label)) }

// TestExampleConfigRuns runs the config file the README and
// docs/configuration.md show, config/testdata/example.yml, as it is but
// for the simulator's address (the file names the simulator's default,
// 127.0.0.1:9001, which a test cannot count on being free): both of its
// sources must come up.
func TestExampleConfigRuns(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "config", "testdata", "example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const defaultAddr = "http://127.0.0.1:9001/"
	if !bytes.Contains(example, []byte(defaultAddr)) {
		t.Fatalf("the example no longer names the local simulator (%s)", defaultAddr)
	}
	sim := StartSimulator(t, "--switches=8", "--interval=1s", "--incident-rate=0")
	configFile := filepath.Join(t.TempDir(), "example.yml")
	local := bytes.ReplaceAll(example, []byte(defaultAddr), []byte(sim.URL+"/"))
	if err := os.WriteFile(configFile, local, 0o644); err != nil {
		t.Fatal(err)
	}
	agg := StartAggregator(t, "--config.file="+configFile)
	WaitReady(t, agg, 30*time.Second)
	Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		series, err := scrapeSeries(agg.URL)
		if err != nil {
			return err
		}
		for _, want := range []string{`fabric_source_up{source="east"} 1`, `fabric_source_up{source="west"} 1`} {
			if !series.hasLine(want) {
				return fmt.Errorf("no %s", want)
			}
		}
		if series.count("fabric_port_", `fabric="east"`) == 0 || series.count("fabric_switch_", "") == 0 {
			return errors.New("east's port series or west's switch series missing")
		}
		return nil
	})
}

package e2e

import (
	"encoding/json"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"testing"
)

// flagRe finds the flag a --help line starts with ("  -h, --[no-]help",
// "      --web.listen-address=:8080"), not one that a wrapped help text
// mentions further in.
var flagRe = regexp.MustCompile(`(?m)^(?:  -\w, |      )--(?:\[no-\])?([a-z0-9][a-z0-9.-]*)`)

// TestStatusFlagsListsEveryFlag: /api/v1/status/flags of the binary lists
// every flag its --help shows (but help and version, as Prometheus leaves
// out kingpin's own), each with the value given on the command line or its
// default; status/runtimeinfo reports the retention given.
func TestStatusFlagsListsEveryFlag(t *testing.T) {
	t.Parallel()
	bin, _ := Binaries(t)
	help, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, help)
	}
	var want []string
	for _, m := range flagRe.FindAllStringSubmatch(string(help), -1) {
		if m[1] != "help" && m[1] != "version" {
			want = append(want, m[1])
		}
	}
	slices.Sort(want)

	agg := StartAggregator(t, "--source.url=http://127.0.0.1:1/counters", "--source.interval=3s", "--query.retention=90m")
	var flags struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(Get(t, agg.URL+"/api/v1/status/flags").Body, &flags); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(flags.Data)); !slices.Equal(got, want) {
		t.Errorf("flags listed:\n %v\nflags in --help:\n %v", got, want)
	}
	for k, v := range map[string]string{"source.interval": "3s", "query.retention": "1h30m0s", "source.timeout": "5s", "query.self-metrics-job": "fabric-aggregator"} {
		if flags.Data[k] != v {
			t.Errorf("%s = %q, want %q", k, flags.Data[k], v)
		}
	}
	var info struct {
		Data struct {
			StorageRetention string `json:"storageRetention"`
		} `json:"data"`
	}
	if err := json.Unmarshal(Get(t, agg.URL+"/api/v1/status/runtimeinfo").Body, &info); err != nil {
		t.Fatal(err)
	}
	if info.Data.StorageRetention != "1h30m" {
		t.Errorf("storageRetention %q, want 1h30m", info.Data.StorageRetention)
	}
}

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// deadline bounds every wait: generous for a loaded CI machine.
const deadline = 30 * time.Second

// startAggregator runs the binary on a free port with args and returns its
// address. It is stopped with SIGTERM when the test ends; its log is shown
// if the test failed.
func startAggregator(t *testing.T, args ...string) string {
	t.Helper()
	addr := testproc.FreeAddr(t)
	testproc.Start(t, binary, append([]string{"--web.listen-address=" + addr}, args...)...)
	return addr
}

// get fetches url with client and returns the status and body.
func get(t *testing.T, client *http.Client, url string, modify func(*http.Request)) (int, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if modify != nil {
		modify(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// scrapeUntil scrapes url until ok accepts the parsed families or the
// deadline passes, and returns the last body.
func scrapeUntil(t *testing.T, client *http.Client, url string, modify func(*http.Request), what string, ok func(map[string]*dto.MetricFamily) bool) []byte {
	t.Helper()
	end := time.Now().Add(deadline)
	var lastErr error
	for {
		code, body, err := get(t, client, url, modify)
		if err == nil && code == http.StatusOK {
			fams, perr := parseText(body)
			if perr == nil && ok(fams) {
				return body
			}
			lastErr = perr
		} else if err != nil {
			lastErr = err
		}
		if time.Now().After(end) {
			t.Fatalf("no %s within %s (last error %v)", what, deadline, lastErr)
		}
		time.Sleep(50 * time.Millisecond) // polling an external process: nothing to wait on
	}
}

func parseText(body []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

// value returns the value of the series of name with labels (name=value
// pairs), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		default:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func tlsClient(pool *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// promtoolCheck pipes body through promtool check metrics from the tools
// module.
func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "tools", "go.mod")); err != nil {
		t.Skip("tools/go.mod missing: promtool (go tool -modfile=tools/go.mod promtool) is not available")
	}
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "promtool", "check", "metrics")
	cmd.Dir = root
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

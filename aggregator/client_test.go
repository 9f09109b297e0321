package aggregator

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

const sourceBody = "switch_id,Rx_Bytes\nSW-01,7\n"

// Secrets of the client tests: none may appear in the logs.
const (
	testPassword = "pa55-word-never-logged"
	testToken    = "t0ken-never-logged"
	fileToken    = "f1le-t0ken-never-logged"
)

var defaults = config.Source{
	Format: config.FormatAuto, Interval: model.Duration(time.Hour), Timeout: model.Duration(5 * time.Second), MaxBytes: 1 << 20,
}

// firstCycle runs an aggregator over the sources of a config file until
// its first poll, and returns that poll and everything logged. Relative
// paths in the file are its directory's, dir.
func firstCycle(t *testing.T, dir, file string) (ingest.Cycle, *Aggregator, string) {
	t.Helper()
	path := filepath.Join(dir, "sources.yml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, defaults)
	if err != nil {
		t.Fatal(err)
	}
	var logs testproc.LockedBuffer
	a, err := New(Config{Sources: cfg.Sources, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cycles := make(chan ingest.Cycle, 1)
	a.OnCycle(func(c ingest.Cycle) {
		select {
		case cycles <- c:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	select {
	case c := <-cycles:
		return c, a, logs.String()
	case <-time.After(10 * time.Second):
		t.Fatal("no poll within 10s")
		return ingest.Cycle{}, nil, ""
	}
}

// checking serves the body only to requests that pass check, and 401 to
// the others.
func checking(check func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !check(r) {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, sourceBody)
	})
}

// TestSourceClientSettings: a source's TLS, basic auth, bearer token
// (inline or from a file next to the config file) and proxy settings,
// given in the config file as in a Prometheus scrape config, reach the
// source, and no secret is ever logged, neither at start-up nor when a
// poll is refused.
func TestSourceClientSettings(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testproc.SelfSignedCert(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(fileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := httptest.NewUnstartedServer(checking(func(r *http.Request) bool { return r.TLS != nil }))
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	basicSrv := httptest.NewServer(checking(func(r *http.Request) bool {
		user, password, ok := r.BasicAuth()
		return ok && user == "poller" && password == testPassword
	}))
	t.Cleanup(basicSrv.Close)
	bearerSrv := httptest.NewServer(checking(func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer "+testToken
	}))
	t.Cleanup(bearerSrv.Close)
	fileBearerSrv := httptest.NewServer(checking(func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer "+fileToken
	}))
	t.Cleanup(fileBearerSrv.Close)
	// A forward proxy answers for the source itself, on a port where
	// nothing listens: only a request through the proxy can succeed.
	unreachable := "127.0.0.1:1"
	proxy := httptest.NewServer(checking(func(r *http.Request) bool {
		return r.URL.IsAbs() && r.URL.Host == unreachable
	}))
	t.Cleanup(proxy.Close)

	tests := []struct {
		name, url, settings string
		reason              ingest.Reason // empty: published
	}{
		{"tls with the source's CA", tlsSrv.URL, "tls_config: {ca_file: cert.pem}", ""},
		{"tls without it", tlsSrv.URL, "", ingest.ReasonConnection},
		{"basic auth", basicSrv.URL, "basic_auth: {username: poller, password: " + testPassword + "}", ""},
		{"basic auth, wrong password", basicSrv.URL, "basic_auth: {username: poller, password: x" + testPassword + "}", ingest.ReasonHTTPStatus},
		{"bearer token", bearerSrv.URL, "bearer_token: " + testToken, ""},
		{"authorization credentials", bearerSrv.URL, "authorization: {credentials: " + testToken + "}", ""},
		{"bearer token file", fileBearerSrv.URL, "bearer_token_file: token", ""},
		{"no credentials", bearerSrv.URL, "", ingest.ReasonHTTPStatus},
		{"proxy", "http://" + unreachable, "proxy_url: " + proxy.URL, ""},
		{"no proxy", "http://" + unreachable, "", ingest.ReasonConnection},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := fmt.Sprintf("sources:\n- name: s\n  url: %s/counters\n", tc.url)
			if tc.settings != "" {
				file += "  " + tc.settings + "\n"
			}
			c, a, logs := firstCycle(t, dir, file)
			if tc.reason == "" && (c.Err != nil || a.Store().Load() == nil) {
				t.Errorf("poll rejected (%v), want it published", c.Err)
			}
			if tc.reason != "" && (ingest.ReasonOf(c.Err) != tc.reason || a.Store().Load() != nil) {
				t.Errorf("poll: %v; want reason %s and nothing published", c.Err, tc.reason)
			}
			for _, secret := range []string{testPassword, testToken, fileToken} {
				if strings.Contains(logs, secret) {
					t.Errorf("a secret was logged:\n%s", logs)
				}
			}
		})
	}
}

// TestSourceRedirects: a redirect to the source's own scheme, host and port
// is followed; one to another host or port (localhost is another host than
// 127.0.0.1, though both are this machine) is refused with reason
// connection, naming the host, and nothing is published, unless the source
// lists that host:port in redirect_hosts. follow_redirects: false keeps
// Prometheus's meaning: the 3xx itself is the answer.
func TestSourceRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, sourceBody) })
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("location"), http.StatusFound)
	})
	source := httptest.NewServer(mux)
	t.Cleanup(source.Close)
	other := httptest.NewServer(mux)
	t.Cleanup(other.Close)
	_, sourcePort, _ := net.SplitHostPort(source.Listener.Addr().String())
	sourceAsLocalhost := "localhost:" + sourcePort
	otherHost := other.Listener.Addr().String()
	redirect := func(location string) string { return source.URL + "/to?location=" + url.QueryEscape(location) }

	tests := []struct {
		name, url, settings string
		reason              ingest.Reason // empty: published
		errNames            string
	}{
		{"same host", redirect("/body"), "", "", ""},
		{"another host name", redirect("http://" + sourceAsLocalhost + "/body"), "", ingest.ReasonConnection, sourceAsLocalhost},
		{"another host name, listed", redirect("http://" + sourceAsLocalhost + "/body"),
			fmt.Sprintf("redirect_hosts: [%q]", sourceAsLocalhost), "", ""},
		{"another port", redirect(other.URL + "/body"), "", ingest.ReasonConnection, otherHost},
		{"another port, another host listed", redirect(other.URL + "/body"),
			fmt.Sprintf("redirect_hosts: [%q]", sourceAsLocalhost), ingest.ReasonConnection, otherHost},
		{"another port, listed", redirect(other.URL + "/body"), fmt.Sprintf("redirect_hosts: [%q]", otherHost), "", ""},
		{"not followed", redirect("/body"), "follow_redirects: false", ingest.ReasonHTTPStatus, "302"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := fmt.Sprintf("sources:\n- name: s\n  url: %s\n", tc.url)
			if tc.settings != "" {
				file += "  " + tc.settings + "\n"
			}
			c, a, _ := firstCycle(t, t.TempDir(), file)
			if tc.reason == "" {
				if c.Err != nil || a.Store().Load() == nil {
					t.Errorf("poll rejected (%v), want it published", c.Err)
				}
				return
			}
			if ingest.ReasonOf(c.Err) != tc.reason || a.Store().Load() != nil {
				t.Errorf("poll: %v; want reason %s and nothing published", c.Err, tc.reason)
			}
			if c.Err != nil && !strings.Contains(c.Err.Error(), tc.errNames) {
				t.Errorf("error %q does not name %s", c.Err, tc.errNames)
			}
		})
	}
}

// Command relay serves the switch data of an aggregator's /metrics with
// sample timestamps, for the PromQL compliance run (tools/compliance): a
// Prometheus server that scrapes it with honor_timestamps stores every
// sample at the source time of its snapshot, the time the aggregator's own
// history gives it, so that the two are compared on the same samples.
//
// /metrics carries no timestamps (it should not: a scrape's time is the
// right time for most uses), but every series of a view with one part has
// the time fabric_snapshot_timestamp_seconds gives; the relay appends it to
// each data sample, in milliseconds, and leaves the self-metrics out.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const snapshotTimestamp = "fabric_snapshot_timestamp_seconds"

func main() {
	listen := flag.String("listen", "127.0.0.1:19180", "address to serve /metrics on")
	target := flag.String("target", "http://127.0.0.1:19080/metrics", "the aggregator's /metrics")
	flag.Parse()
	client := &http.Client{Timeout: 10 * time.Second}
	http.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		body, err := fetch(r, client, *target)
		if err == nil {
			body, err = stamp(body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}

func fetch(r *http.Request, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// stamp keeps the data families (fabric_switch_*, fabric_port_*) of a text
// exposition and appends the snapshot's time to each of their samples.
func stamp(body []byte) ([]byte, error) {
	ts, err := snapshotMillis(body)
	if err != nil {
		return nil, err
	}
	suffix := " " + strconv.FormatInt(ts, 10)
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if !strings.HasPrefix(name, "fabric_switch_") && !strings.HasPrefix(name, "fabric_port_") {
			continue
		}
		out.WriteString(line)
		if !strings.HasPrefix(line, "#") {
			out.WriteString(suffix)
		}
		out.WriteByte('\n')
	}
	return out.Bytes(), sc.Err()
}

// snapshotMillis reads fabric_snapshot_timestamp_seconds, in milliseconds.
func snapshotMillis(body []byte) (int64, error) {
	for line := range bytes.Lines(body) {
		if rest, ok := bytes.CutPrefix(line, []byte(snapshotTimestamp+" ")); ok {
			v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
			if err != nil {
				return 0, err
			}
			return int64(math.Round(v * 1000)), nil
		}
	}
	return 0, errors.New("no " + snapshotTimestamp + ": no snapshot yet")
}

// Command freshness measures how fresh the data a replica serves is: for
// each poll, the time from its source time (the simulator's snapshot
// time, the timestamp of every row) to the moment an aggregator first
// serves it, by the direct HTTP path and through the poll log.
//
// It builds and starts, on loopback: the simulator (the fabric in UFM
// Telemetry's layout, a snapshot every -interval); an in-process kfake
// cluster of -brokers brokers; a publisher, an aggregator polling the
// simulator every -interval and writing every accepted poll to the topic
// (--kafka.publish); and a replica, an aggregator whose source is
// kafka://BROKERS/TOPIC. The publisher is started -phase after a new
// snapshot of the simulator, so that the direct path's figure is the poll
// cycle and not the wait for the next poll, which depends on when the two
// happened to start (0 to one interval). Then, for -duration, it asks both
// for one value (GetMetric of the first switch's first port) every -probe
// and notes when each new source time appears. It prints p50, p99 and the
// maximum of source time to served for both paths, and of the delay the
// log adds to each poll (replica minus publisher). The source time served
// when a probe starts is not counted: when it appeared is not known.
//
// Run it from tools/ (the module with kfake), at the repository's root
// given by -root:
//
//	go run ./freshness -duration 2m
package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

type options struct {
	root            string
	switches, ports int
	interval        time.Duration
	duration, probe time.Duration
	brokers         int
	topic           string
	readyTimeout    time.Duration
	phase           time.Duration
	keepLogs        bool
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.StringVar(&o.root, "root", "..", "repository root: the binaries are built from its cmd/")
	flag.IntVar(&o.switches, "switches", 2000, "switches of the simulated fabric")
	flag.IntVar(&o.ports, "ports", 64, "ports per switch")
	flag.DurationVar(&o.interval, "interval", 2*time.Second, "the simulator's snapshot interval and the publisher's poll interval")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long to measure, once both aggregators are ready")
	flag.DurationVar(&o.probe, "probe", 5*time.Millisecond, "how often each aggregator is asked")
	flag.IntVar(&o.brokers, "brokers", 3, "brokers of the kfake cluster")
	flag.StringVar(&o.topic, "topic", "fabric-telemetry", "topic of the poll log")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 2*time.Minute, "how long the aggregators may take to be ready")
	flag.DurationVar(&o.phase, "phase", 0, "start the publisher this long after a new snapshot of the simulator; negative starts it at once, whatever the phase")
	flag.BoolVar(&o.keepLogs, "keep-logs", false, "keep the processes' logs (their directory is printed)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := measure(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "freshness:", err)
		return 1
	}
	return 0
}

func measure(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "freshness-")
	if err != nil {
		return err
	}
	if o.keepLogs {
		fmt.Fprintln(out, "logs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bins := map[string]string{}
	for _, name := range []string{"telemetry-simulator", "telemetry-aggregator"} {
		bins[name] = filepath.Join(dir, name)
		build := exec.CommandContext(ctx, "go", "build", "-o", bins[name], "./cmd/"+name)
		build.Dir = o.root
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w\n%s", name, err, b)
		}
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(o.brokers))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")

	simAddr, pubAddr, repAddr := freeAddr(), freeAddr(), freeAddr()
	procs := &processes{dir: dir}
	defer procs.stop()
	if err := procs.start("simulator", bins["telemetry-simulator"],
		"--web.listen-address="+simAddr, "--switches="+strconv.Itoa(o.switches), "--ports="+strconv.Itoa(o.ports),
		"--interval="+o.interval.String(), "--incident-rate=0"); err != nil {
		return err
	}
	if o.phase >= 0 {
		// The publisher polls at once and then every interval, as the
		// simulator ticks: started just after a tick, it polls each
		// snapshot about its start-up time plus phase after it was made.
		// Started anywhere else, the direct path's figure is mostly the
		// wait for the next poll, 0 to one interval.
		if err := waitTick(ctx, procs, "http://"+simAddr, o.switches, o.readyTimeout); err != nil {
			return err
		}
		time.Sleep(o.phase)
	}
	if err := procs.start("publisher", bins["telemetry-aggregator"],
		"--web.listen-address="+pubAddr, "--source.url=http://"+simAddr+"/csv/metrics",
		"--source.interval="+o.interval.String(), "--source.timeout="+max(o.interval, 5*time.Second).String(),
		"--kafka.brokers="+brokers, "--kafka.topic="+o.topic, "--kafka.publish"); err != nil {
		return err
	}
	if err := procs.start("replica", bins["telemetry-aggregator"],
		"--web.listen-address="+repAddr, "--source.url=kafka://"+brokers+"/"+o.topic,
		"--source.interval="+o.interval.String()); err != nil {
		return err
	}
	for _, addr := range []string{pubAddr, repAddr} {
		if err := waitReady(ctx, procs, "http://"+addr, o.readyTimeout); err != nil {
			return err
		}
	}

	query := "/telemetry/GetMetric?switch_id=" + firstSwitch(o.switches) + "&metric_name=PortXmitDataExtended&port=1"
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var wg sync.WaitGroup
	seen := map[string]map[time.Time]time.Time{}
	var mu sync.Mutex
	var probeErr error
	for name, addr := range map[string]string{"direct": pubAddr, "replica": repAddr} {
		seen[name] = map[time.Time]time.Time{}
		wg.Go(func() {
			err := probe(ctx, "http://"+addr+query, o.probe, func(source, served time.Time) {
				mu.Lock()
				defer mu.Unlock()
				seen[name][source] = served
			})
			mu.Lock()
			probeErr = cmp.Or(probeErr, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	if probeErr != nil {
		return probeErr
	}
	if err := procs.exited(); err != nil {
		return err
	}
	report(out, o, seen)
	return nil
}

// report prints the latencies of each path and the delay the log adds.
func report(out io.Writer, o options, seen map[string]map[time.Time]time.Time) {
	lat := func(m map[time.Time]time.Time) []time.Duration {
		var d []time.Duration
		for source, served := range m {
			d = append(d, served.Sub(source))
		}
		return d
	}
	var added []time.Duration
	for source, direct := range seen["direct"] {
		if replica, ok := seen["replica"][source]; ok {
			added = append(added, replica.Sub(direct))
		}
	}
	phase := "publisher started at any phase of the simulator's interval"
	if o.phase >= 0 {
		phase = fmt.Sprintf("publisher started %s after a snapshot", o.phase)
	}
	fmt.Fprintf(out, "fabric %d × %d ports, a snapshot and a poll every %s, %s, probes every %s, %s measured\n\n",
		o.switches, o.ports, o.interval, phase, o.probe, o.duration)
	fmt.Fprintln(out, "| path | polls | p50 | p99 | max |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	direct, replica := lat(seen["direct"]), lat(seen["replica"])
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{
		{"source time to served, direct HTTP (publisher)", direct},
		{"source time to served, through the poll log (replica)", replica},
		{"added by the log (replica − publisher, same poll)", added},
	} {
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s |\n", r.name, len(r.d), quantile(r.d, 0.5), quantile(r.d, 0.99), quantile(r.d, 1))
	}
	ratio := func(q float64) string {
		a, b := quantile(replica, q), quantile(direct, q)
		if b <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f×", float64(a)/float64(b))
	}
	fmt.Fprintf(out, "\nreplica ÷ direct: p50 %s, p99 %s\n", ratio(0.5), ratio(0.99))
}

// quantile is the q-quantile by the nearest rank, or -1 without samples.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)].Round(time.Millisecond)
}

// probe asks url every interval until ctx ends and calls seen with each
// new source time and when it was first served. The source time served at
// the first answer is not reported: it was served since some time before
// probing began, and taking the first answer's time for the moment it
// appeared would count the wait for the first probe as its latency.
func probe(ctx context.Context, url string, every time.Duration, seen func(source, served time.Time)) error {
	last, err := sourceTime(ctx, url)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		ts, err := sourceTime(ctx, url)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if now := time.Now(); ts.After(last) {
			last = ts
			seen(ts, now)
		}
	}
}

// get returns the body of a 200 answer to GET url; any other status is an
// error with the start of its body.
func get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return resp.Body, nil
}

func sourceTime(ctx context.Context, url string) (time.Time, error) {
	body, err := get(ctx, url)
	if err != nil {
		return time.Time{}, err
	}
	defer body.Close()
	var v struct {
		Timestamp time.Time `json:"timestamp"`
	}
	if err := json.NewDecoder(body).Decode(&v); err != nil {
		return time.Time{}, fmt.Errorf("GET %s: %w", url, err)
	}
	return v.Timestamp, nil
}

// waitTick returns just after the simulator's snapshot changes. It reads
// one UFM shard of about eight switches (the simulator's ?num_shards), so
// that asking every 10 ms costs little.
func waitTick(ctx context.Context, procs *processes, base string, switches int, timeout time.Duration) error {
	url := fmt.Sprintf("%s/csv/metrics?num_shards=%d&shard=", base, max(1, switches/8))
	deadline := time.Now().Add(timeout)
	var first time.Time
	for shard := 0; ; {
		if err := procs.exited(); err != nil {
			return err
		}
		ts, err := ufmTime(ctx, url+strconv.Itoa(shard))
		switch {
		case errors.Is(err, errNoRows):
			shard++ // an empty shard: try the next
		case err == nil && first.IsZero():
			first = ts
		case err == nil && !ts.Equal(first):
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the simulator's snapshot did not change within %s (last error %v)", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errNoRows = errors.New("no rows")

// ufmTime is the timestamp (µs) of the first row of a UFM CSV body.
func ufmTime(ctx context.Context, url string) (time.Time, error) {
	body, err := get(ctx, url)
	if err != nil {
		return time.Time{}, err
	}
	defer body.Close()
	r := csv.NewReader(body)
	header, err := r.Read()
	if err != nil {
		return time.Time{}, fmt.Errorf("GET %s: %w", url, err)
	}
	col := slices.Index(header, "timestamp")
	row, err := r.Read()
	switch {
	case errors.Is(err, io.EOF):
		return time.Time{}, errNoRows
	case err != nil:
		return time.Time{}, fmt.Errorf("GET %s: %w", url, err)
	case col < 0 || col >= len(row):
		return time.Time{}, fmt.Errorf("GET %s: no timestamp column", url)
	}
	us, err := strconv.ParseInt(row[col], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("GET %s: timestamp %q: %w", url, row[col], err)
	}
	return time.UnixMicro(us), nil
}

// firstSwitch is the simulator's first switch id: SW- and 1, zero-padded
// to the width of the largest index, at least two digits.
func firstSwitch(switches int) string {
	width := max(2, len(strconv.Itoa(switches)))
	return "SW-" + strings.Repeat("0", width-1) + "1"
}

// waitReady waits until base/-/ready answers 200.
func waitReady(ctx context.Context, procs *processes, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := procs.exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready after %s (last error %v); logs in %s", base, timeout, err, procs.dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// processes are the programs started, each logging to a file in dir.
type processes struct {
	dir  string
	mu   sync.Mutex
	cmds []*exec.Cmd
	errs []error
}

func (p *processes) start(name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(p.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.cmds = append(p.cmds, cmd)
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		log.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		if err == nil {
			err = errors.New("exited")
		}
		tail, _ := os.ReadFile(log.Name())
		p.errs = append(p.errs, fmt.Errorf("%s: %w\n%s", name, err, lastLines(string(tail), 20)))
	}()
	return nil
}

// exited returns an error naming every process that has stopped.
func (p *processes) exited() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

func (p *processes) stop() {
	p.mu.Lock()
	cmds := slices.Clone(p.cmds)
	p.mu.Unlock()
	for _, c := range cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.errs)
		p.mu.Unlock()
		if n >= len(cmds) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

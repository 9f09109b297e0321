package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Partitioned replicas end to end (docs/scale-out.md): the real binaries,
// a simulator writing its fabric to a topic of a 3-broker kfake cluster,
// and aggregators sharing it as members of one consumer group
// (kafka://…/polls?group=fabric), each holding the switches of its
// partitions and answering for the whole fabric.
//
// The simulator's interval is an hour: it writes one snapshot, so every
// answer, whenever it is given, can be compared with that snapshot as a
// replica that follows the whole log (no group) serves it, and with the
// simulator's own body.

const (
	partSwitches   = 40
	partPorts      = 4
	partPartitions = 8
	partGroup      = "fabric"
	// partQuery counts the switches in PromQL, partRowsQuery their ports.
	partQuery     = "count(count by (switch_id) (fabric_port_receive_bytes_total))"
	partRowsQuery = "count(fabric_port_receive_bytes_total)"
)

// partFabric is one test's fabric: the topic, the simulator writing it,
// and a replica of the whole log, the reference every answer is compared
// with.
type partFabric struct {
	brokers string
	sim     *Process
	whole   *Process
	ids     []string // the simulator's switches, in order
	data    series   // the whole replica's /metrics switch data
}

func newPartFabric(t *testing.T) *partFabric {
	t.Helper()
	c := newKafka(t)
	f := &partFabric{brokers: brokersOf(c)}
	f.sim = StartSimulator(t, fmt.Sprintf("--switches=%d", partSwitches), fmt.Sprintf("--ports=%d", partPorts),
		"--interval=1h", "--incident-rate=0", "--kafka.brokers="+f.brokers, "--kafka.topic=polls",
		fmt.Sprintf("--kafka.partitions=%d", partPartitions))
	f.whole = StartAggregator(t, replicaArgs(f.brokers, "polls", time.Hour, "--source.max-staleness=1h", "--query.retention=10m")...)
	WaitReady(t, f.whole, 60*time.Second)
	f.ids = simSwitchIDs(t, f.sim)
	data, err := fabricData(f.whole)
	if err != nil {
		t.Fatal(err)
	}
	if got := switchesOf(data); !slices.Equal(got, f.ids) {
		t.Fatalf("the whole log's replica serves switches %v, the simulator %v", got, f.ids)
	}
	f.data = data
	return f
}

// replica starts a partitioned replica of the fabric on a port of its own;
// its --web.external-url is the default, http:// and that address.
func (f *partFabric) replica(t *testing.T, extra ...string) *Process {
	t.Helper()
	args := []string{"--source.url=kafka://" + f.brokers + "/polls?group=" + partGroup, "--source.interval=1h",
		"--source.max-staleness=1h", "--query.retention=10m", "--web.listen-address=" + FreeAddr(t)}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--fanout.timeout=") }) {
		args = append(args, "--fanout.timeout=5s")
	}
	return StartAggregator(t, append(args, extra...)...)
}

// waitSplit waits until the replicas are ready and each serves a share of
// the fabric on /metrics, and returns their shares: disjoint, and together
// the whole replica's /metrics data, series for series.
func (f *partFabric) waitSplit(t *testing.T, replicas ...*Process) []series {
	t.Helper()
	for _, r := range replicas {
		WaitReady(t, r, 60*time.Second)
	}
	var shares []series
	Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		shares = shares[:0]
		union := series{}
		for _, r := range replicas {
			d, err := fabricData(r)
			if err != nil {
				return err
			}
			if len(d) == 0 {
				return fmt.Errorf("%s serves no switch yet", r.URL)
			}
			for k, v := range d {
				if _, dup := union[k]; dup {
					return fmt.Errorf("%s is served by two replicas (a rebalance under way)", k)
				}
				union[k] = v
			}
			shares = append(shares, d)
		}
		if !maps.Equal(union, f.data) {
			return fmt.Errorf("the replicas serve %d series together, the whole log %d", len(union), len(f.data))
		}
		return nil
	})
	return shares
}

// simSwitchIDs reads the switch ids of the simulator's body, apart from the
// aggregator's parser.
func simSwitchIDs(t *testing.T, sim *Process) []string {
	t.Helper()
	body, err := fetchGoodBody(context.Background(), sim, "/counters")
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(records) < 2 || records[0][0] != "switch_id" {
		t.Fatalf("simulator body: %v", err)
	}
	var ids []string
	for _, rec := range records[1:] {
		ids = append(ids, rec[0])
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) != partSwitches || len(records)-1 != partSwitches*partPorts {
		t.Fatalf("the simulator has %d switches in %d rows, want %d of %d ports", len(ids), len(records)-1, partSwitches, partPorts)
	}
	return ids
}

// fabricData is the switch data of a /metrics scrape: every series with a
// switch_id label.
func fabricData(p *Process) (series, error) {
	all, err := scrapeSeries(p.URL)
	if err != nil {
		return nil, err
	}
	data := series{}
	for k, v := range all {
		if strings.Contains(k, `switch_id="`) {
			data[k] = v
		}
	}
	return data, nil
}

// switchesOf returns the switch ids of some data series, in order.
func switchesOf(data series) []string {
	var ids []string
	for k := range data {
		_, rest, _ := strings.Cut(k, `switch_id="`)
		id, _, _ := strings.Cut(rest, `"`)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// restAnswer is a REST answer: its status and its JSON body with numbers as
// written, age_seconds left out (the age moves on with the clock).
type restAnswer struct {
	status int
	body   map[string]any
}

func getREST(p *Process, target string) (restAnswer, error) {
	r, err := TryDo(context.Background(), http.MethodGet, p.URL+target)
	if err != nil {
		return restAnswer{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	a := restAnswer{status: r.Status}
	if err := dec.Decode(&a.body); err != nil {
		return restAnswer{}, fmt.Errorf("%s: %d %s: %w", target, r.Status, r.Body, err)
	}
	delete(a.body, "age_seconds")
	return a, nil
}

// partial reports whether the answer says it is partial, with warnings.
func (a restAnswer) partial() bool {
	ws, _ := a.body["warnings"].([]any)
	return a.body["partial"] == true && len(ws) > 0
}

func (a restAnswer) String() string {
	b, _ := json.Marshal(a.body)
	return fmt.Sprintf("%d %.600s", a.status, b)
}

// sameREST checks that a replica's answer is the whole log replica's.
func sameREST(got, want restAnswer) error {
	if got.status != want.status || !reflect.DeepEqual(got.body, want.body) {
		return fmt.Errorf("got %s\nwant %s", got, want)
	}
	return nil
}

// promAnswer is a PromQL answer of one number, with its warnings.
type promAnswer struct {
	value    string
	warnings []string
}

func queryNumber(p *Process, query string) (promAnswer, error) {
	r, err := TryDo(context.Background(), http.MethodGet, p.URL+"/api/v1/query?"+url.Values{"query": {query}}.Encode())
	if err != nil {
		return promAnswer{}, err
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil || env.Status != "success" || len(env.Data.Result) > 1 {
		return promAnswer{}, fmt.Errorf("%s: %d %.300s", query, r.Status, r.Body)
	}
	a := promAnswer{warnings: env.Warnings}
	if len(env.Data.Result) == 1 {
		a.value = fmt.Sprint(env.Data.Result[0].Value[1])
	}
	return a, nil
}

// wholeAnswers are the requests every replica must answer as the whole
// log's replica does, and those answers: ListMetrics, GetMetric of each
// of the given switches (all its ports, and one), ListMetrics of two of
// them.
func (f *partFabric) wholeAnswers(t *testing.T, ids ...string) map[string]restAnswer {
	t.Helper()
	targets := []string{"/telemetry/ListMetrics"}
	for _, id := range ids {
		targets = append(targets,
			"/telemetry/GetMetric?switch_id="+id+"&metric_name=Rx_Bytes",
			"/telemetry/GetMetric?switch_id="+id+"&metric_name=Tx_Packets&port=2",
			"/telemetry/ListMetrics?switch_id="+id+"&switch_id="+ids[0])
	}
	out := map[string]restAnswer{}
	for _, target := range targets {
		a, err := getREST(f.whole, target)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK || a.partial() {
			t.Fatalf("the whole log's replica: %s: %s", target, a)
		}
		out[target] = a
	}
	return out
}

// checkWhole checks that r answers every request of want, the whole
// replica's answers, and both PromQL counts, as the whole replica does,
// none of them partial.
func (f *partFabric) checkWhole(t *testing.T, r *Process, want map[string]restAnswer) {
	t.Helper()
	for _, target := range slices.Sorted(maps.Keys(want)) {
		got, err := getREST(r, target)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameREST(got, want[target]); err != nil {
			t.Errorf("%s: %s: %v", r.URL, target, err)
		}
	}
	for _, q := range []string{partQuery, partRowsQuery} {
		w, err := queryNumber(f.whole, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := queryNumber(r, q)
		if err != nil {
			t.Fatal(err)
		}
		if got.value != w.value || len(got.warnings) > 0 || len(w.warnings) > 0 {
			t.Errorf("%s: %s = %s %q, the whole log's replica %s %q", r.URL, q, got.value, got.warnings, w.value, w.warnings)
		}
	}
}

// TestPartitionedReplicas: two replicas in one group split the fabric.
// Their /metrics switch data are disjoint, each non-empty, and together
// the whole log's (the simulator's switches, every series); each answers
// ListMetrics, GetMetric of a switch the other holds, and PromQL counts of
// the switches and their ports as the whole log's replica does, none of
// them partial; and each read the other's share over the network.
func TestPartitionedReplicas(t *testing.T) {
	t.Parallel()
	f := newPartFabric(t)
	a, b := f.replica(t), f.replica(t)
	shares := f.waitSplit(t, a, b)
	onA, onB := switchesOf(shares[0]), switchesOf(shares[1])
	if all := slices.Sorted(slices.Values(append(slices.Clone(onA), onB...))); !slices.Equal(all, f.ids) {
		t.Errorf("the replicas serve switches %v and %v, the simulator has %v", onA, onB, f.ids)
	}
	t.Logf("a serves %d switches (%d series), b %d (%d series)", len(onA), len(shares[0]), len(onB), len(shares[1]))
	if r := Get(t, a.URL+"/-/ready"); r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != "Ready." {
		t.Errorf("a's /-/ready: %d %s", r.Status, r.Body)
	}

	for _, c := range []struct {
		r     *Process
		other []string // switches the other replica holds
	}{{a, onB}, {b, onA}} {
		f.checkWhole(t, c.r, f.wholeAnswers(t, c.other[0], c.other[len(c.other)-1]))
	}
	for _, c := range []struct{ r, peer *Process }{{a, b}, {b, a}} {
		for _, api := range []string{"rows", "remote_read"} {
			if n, err := metricValue(c.r, "fabric_fanout_requests_total", map[string]string{"api": api, "peer": c.peer.URL, "result": "success"}); err != nil || n == 0 {
				t.Errorf("%s: %v successful %s requests to %s counted (%v)", c.r.URL, n, api, c.peer.URL, err)
			}
		}
	}
}

// TestPartitionedReplicaKilled kills one of two replicas without warning
// (SIGKILL: it never leaves the group). Until the group's session timeout
// (--kafka.session-timeout, 10 s) passes, the survivor's answers say they
// are partial, naming the dead replica; then it takes the dead replica's
// partitions over, replays them, and within 30 s of the kill its /metrics
// has every switch, and its answers are whole again.
func TestPartitionedReplicaKilled(t *testing.T) {
	t.Parallel()
	f := newPartFabric(t)
	a, b := f.replica(t), f.replica(t)
	shares := f.waitSplit(t, a, b)
	want := f.wholeAnswers(t, switchesOf(shares[1])[0])

	b.Kill(t)
	killed := time.Now()
	list, err := getREST(a, "/telemetry/ListMetrics")
	if err != nil {
		t.Fatal(err)
	}
	if list.status != http.StatusOK || !list.partial() || !strings.Contains(fmt.Sprint(list.body["warnings"]), b.URL) {
		t.Errorf("ListMetrics right after the kill: %s; want it partial, naming %s", list, b.URL)
	}
	Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		d, err := fabricData(a)
		if err != nil {
			return err
		}
		if !maps.Equal(d, f.data) {
			return fmt.Errorf("a serves %d of the %d series", len(d), len(f.data))
		}
		return nil
	})
	t.Logf("a served every switch %v after b was killed (session timeout 10s)", time.Since(killed).Round(time.Millisecond))
	WaitReady(t, a, 10*time.Second)
	f.checkWhole(t, a, want)
	if n, err := metricValue(a, "fabric_polllog_partitions_owned", map[string]string{"source": "default"}); err != nil || n != partPartitions {
		t.Errorf("a owns %v partitions (%v), want all %d", n, err, partPartitions)
	}
}

// TestPartitionedReplicaJoins adds a third replica to two while both are
// asked continuously: ListMetrics, GetMetric of every switch in turn, a
// ListMetrics of two switches, and both PromQL counts. During the
// rebalance an answer may lack the partitions being handed over (given
// up by one replica, still loading on the new one), but then it must say
// so: every answer is the whole log's replica's answer, or says it is
// partial (REST "partial" with warnings, or a 503 naming what is missing
// instead of a 404; PromQL warnings, with no more than the whole count),
// never silently short. The third replica ends with a share, and all
// three answer whole.
func TestPartitionedReplicaJoins(t *testing.T) {
	t.Parallel()
	f := newPartFabric(t)
	a, b := f.replica(t), f.replica(t)
	f.waitSplit(t, a, b)
	want := f.wholeAnswers(t, f.ids...)
	wantProm := map[string]promAnswer{}
	for _, q := range []string{partQuery, partRowsQuery} {
		w, err := queryNumber(f.whole, q)
		if err != nil {
			t.Fatal(err)
		}
		wantProm[q] = w
	}

	ctx, stop := context.WithCancel(context.Background())
	var (
		wg                     sync.WaitGroup
		mu                     sync.Mutex
		whole, partial, errors int
	)
	bad := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if errors++; errors <= 10 {
			t.Errorf(format, args...)
		}
	}
	count := func(isPartial bool) {
		mu.Lock()
		defer mu.Unlock()
		if isPartial {
			partial++
		} else {
			whole++
		}
	}
	targets := slices.Sorted(maps.Keys(want))
	for _, r := range []*Process{a, b} {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				target := targets[i%len(targets)]
				if i%3 == 2 {
					checkPromDuringJoin(r, []string{partQuery, partRowsQuery}[i%2], wantProm, bad, count)
					continue
				}
				got, err := getREST(r, target)
				switch {
				case err != nil:
					bad("%s: %s: %v", r.URL, target, err)
				case got.status == http.StatusOK && !got.partial():
					if err := sameREST(got, want[target]); err != nil {
						bad("%s: %s, an answer not partial: %v", r.URL, target, err)
					}
					count(false)
				case got.status == http.StatusOK:
					count(true)
				case got.status == http.StatusServiceUnavailable && strings.Contains(fmt.Sprint(got.body["error"]), "replica"):
					count(true) // "…, but not every replica answered: …", "none of the switches asked for is available: … no replica holds …"
				default:
					bad("%s: %s: %s", r.URL, target, got)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // some answers before the join
	c := f.replica(t)
	f.waitSplit(t, a, b, c)
	stop()
	wg.Wait()
	t.Logf("while c joined, a and b gave %d whole answers and %d that said they were partial", whole, partial)
	if whole == 0 {
		t.Error("no whole answer during the join")
	}
	for _, r := range []*Process{a, b, c} {
		f.checkWhole(t, r, want)
	}
}

// checkPromDuringJoin asks one of the counts: the whole log's answer, or
// warnings with no more than it.
func checkPromDuringJoin(r *Process, q string, want map[string]promAnswer, bad func(string, ...any), count func(bool)) {
	got, err := queryNumber(r, q)
	switch {
	case err != nil:
		bad("%s: %v", r.URL, err)
	case len(got.warnings) == 0 && got.value != want[q].value:
		bad("%s: %s = %s without a warning, the whole log's replica says %s", r.URL, q, got.value, want[q].value)
	case len(got.warnings) == 0:
		count(false)
	case got.value != "" && atoiOr(got.value, -1) > atoiOr(want[q].value, 0):
		bad("%s: %s = %s, more than the whole log's %s", r.URL, q, got.value, want[q].value)
	default:
		count(true)
	}
}

// stopProcess sends p SIGSTOP and waits until the kernel says it is
// stopped: the signal stops a process's threads one by one, and a loaded
// machine showed a replica still answering a request just after kill(2)
// returned.
func stopProcess(t *testing.T, p *Process) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	status := fmt.Sprintf("/proc/%d/status", p.Pid())
	Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		b, err := os.ReadFile(status)
		if err != nil {
			return err
		}
		if !stoppedState.Match(b) {
			return fmt.Errorf("%s is not stopped yet", p.URL)
		}
		return nil
	})
}

// stoppedState is the line of /proc/PID/status of a stopped process.
var stoppedState = regexp.MustCompile(`(?m)^State:\s+T `)

func atoiOr(s string, otherwise int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return otherwise
	}
	return n
}

// TestPartitionedPeerUnreachable: a replica whose peer cannot be reached
// answers what it has and says the rest is missing. The peer advertises a
// URL where nothing listens (connection refused), or it is stopped
// (SIGSTOP: connections are accepted and never answered, until
// --fanout.timeout): ListMetrics is partial, naming it, with this
// replica's switches; GetMetric of a switch only the peer holds is a 503
// naming it, never a 404; the PromQL count is this replica's share, with
// a warning naming it. (The session timeout is longer than the test, so
// that the group does not hand the stopped peer's partitions over
// meanwhile.)
func TestPartitionedPeerUnreachable(t *testing.T) {
	t.Parallel()
	f := newPartFabric(t)
	closed := "http://" + FreeAddr(t)
	group := []string{"--fanout.timeout=2s", "--kafka.session-timeout=1m"}
	a := f.replica(t, group...)
	b := f.replica(t, append(group, "--web.external-url="+closed)...)
	shares := f.waitSplit(t, a, b)
	onA, onB := switchesOf(shares[0]), switchesOf(shares[1])

	check := func(r *Process, peer string, own, others []string) {
		t.Helper()
		var wg sync.WaitGroup
		wg.Go(func() {
			list, err := getREST(r, "/telemetry/ListMetrics")
			if err != nil {
				t.Error(err)
				return
			}
			if list.status != http.StatusOK || !list.partial() || !strings.Contains(fmt.Sprint(list.body["warnings"]), "peer "+peer) {
				t.Errorf("%s: ListMetrics: %s; want it partial, naming %s", r.URL, list, peer)
			} else if n, _ := list.body["switch_count"].(json.Number).Int64(); int(n) != len(own) {
				t.Errorf("%s: ListMetrics has %d switches, it holds %d", r.URL, n, len(own))
			}
		})
		wg.Go(func() {
			get, err := getREST(r, "/telemetry/GetMetric?switch_id="+others[0]+"&metric_name=Rx_Bytes")
			if err != nil {
				t.Error(err)
				return
			}
			if get.status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(get.body["error"]), "held by replica "+peer+" did not answer") {
				t.Errorf("%s: GetMetric of %s, which only %s holds: %s; want a 503 naming it", r.URL, others[0], peer, get)
			}
		})
		wg.Go(func() {
			prom, err := queryNumber(r, partQuery)
			if err != nil {
				t.Error(err)
				return
			}
			if prom.value != fmt.Sprint(len(own)) || !strings.Contains(strings.Join(prom.warnings, " "), "peer "+peer) {
				t.Errorf("%s: %s = %s %q; want its %d switches and a warning naming %s", r.URL, partQuery, prom.value, prom.warnings, len(own), peer)
			}
		})
		wg.Wait()
	}
	check(a, closed, onA, onB)
	// b reaches a, and answers whole.
	f.checkWhole(t, b, f.wholeAnswers(t, onA[0]))

	stopProcess(t, a)
	t.Cleanup(func() { _ = syscall.Kill(a.Pid(), syscall.SIGCONT) })
	stopped := time.Now()
	check(b, a.URL, onB, onA)
	t.Logf("b answered, partial, %v after a was stopped (--fanout.timeout=2s)", time.Since(stopped).Round(time.Millisecond))
	if err := syscall.Kill(a.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if n, err := metricValue(b, "fabric_fanout_requests_total", map[string]string{"api": "rows", "peer": a.URL, "result": "timeout"}); err != nil || n == 0 {
		t.Errorf("b counted %v requests for rows to a timed out (%v)", n, err)
	}
}

package restapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// WithPeers makes the API answer for the whole fabric of a partitioned
// aggregator, where this replica holds only the switches of its
// partitions: a request gathers the rows it needs from their owners (all
// of every peer's for a ListMetrics without switch_id), exact, merges them
// with this replica's into a view of its own and answers from it with the
// same code, so the answer is the one a single aggregator holding the whole
// fabric would give. A peer that does not answer makes the answer partial
// ("partial": true, and "warnings" naming it), or a 503 naming it where
// its rows are all the answer would have (never a 404 it might contradict).
// Register then also serves the rows of this replica's own view to its
// peers (cluster.RowsPath). Nil peers leave the API to its own view.
func (a *API) WithPeers(p *cluster.Peers) *API {
	a.peers = p
	return a
}

// registerRows serves this replica's rows to its peers.
func (a *API) registerRows(r *mux.Router) {
	if a.peers != nil {
		r.Handle(cluster.RowsPath, cluster.RowsHandler(a.src, a.peers.Serving())).Methods(http.MethodGet)
	}
}

// fabricView is the view a request answers from and what of the fabric it
// may lack.
type fabricView struct {
	view *snapshot.View
	// warnings name each peer that did not answer and each partition
	// nobody holds, as the answer's "warnings".
	warnings []string
	// lacking says, for a switch asked by name, why its rows may be
	// incomplete; under "" for a request of every switch.
	lacking map[string][]string
}

// viewFor returns the view to answer about switches from (every switch
// when switchIDs is empty), or answers 503 and returns nil when there is
// nothing to answer from. Without peers it is the local view.
func (a *API) viewFor(w http.ResponseWriter, r *http.Request, switchIDs []string) (*snapshot.View, *fabricView) {
	if a.peers == nil {
		return a.load(w), nil
	}
	fv := a.gather(r.Context(), switchIDs)
	if fv.view == nil || len(fv.view.Parts()) == 0 {
		var lacking []string
		for _, l := range fv.lacking {
			lacking = append(lacking, l...)
		}
		if len(lacking) == 0 {
			a.load(w) // the 503 of an aggregator with no view yet
			return nil, nil
		}
		a.unavailable(w, "no snapshot from the replicas that answered", lacking)
		return nil, nil
	}
	return fv.view, fv
}

// unavailable answers 503: what is missing and why.
func (a *API) unavailable(w http.ResponseWriter, what string, why []string) {
	w.Header().Set("Retry-After", a.retryAfter)
	WriteError(w, http.StatusServiceUnavailable, what+": "+strings.Join(why, "; "))
}

// missing answers 503 instead of err, a 404, when the rows that could
// contradict it are missing: those of switchID (or any, with "").
func (a *API) missing(w http.ResponseWriter, fv *fabricView, switchID string, err error) bool {
	var e *apiError
	if fv == nil || !errors.As(err, &e) || e.code != http.StatusNotFound || len(fv.lacking[switchID]) == 0 {
		return false
	}
	a.unavailable(w, e.msg+", but not every replica answered", fv.lacking[switchID])
	return true
}

// gather asks the peers for the rows of switchIDs that this replica does
// not hold (every peer for all its rows when switchIDs is empty) and
// merges them with this replica's own.
func (a *API) gather(ctx context.Context, switchIDs []string) *fabricView {
	fv := &fabricView{lacking: map[string][]string{}}
	var local *snapshot.View
	covers := []cluster.Coverage{a.peers.Held(func() { local = a.src.Load() })}
	asks := a.asks(fv, switchIDs)
	if len(asks) == 0 {
		fv.view = local
		a.checkCoverage(fv, switchIDs, covers)
		return fv
	}
	type answer struct {
		rows cluster.RowsAnswer
		err  error
	}
	answers := make(map[string]answer, len(asks))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for peer, switches := range asks {
		wg.Go(func() {
			rows, err := a.peers.Rows(ctx, peer, switches)
			mu.Lock()
			answers[peer] = answer{rows, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	var parts []*snapshot.Snapshot
	if local != nil {
		for _, p := range local.Parts() {
			if len(switchIDs) > 0 {
				p = subset(p, switchIDs)
			}
			parts = append(parts, p)
		}
	}
	for _, peer := range sortedKeys(asks) {
		ans := answers[peer]
		if ans.err == nil {
			parts = append(parts, ans.rows.Parts...)
			if ans.rows.Coverage != nil {
				covers = append(covers, *ans.rows.Coverage)
			}
			continue
		}
		fv.warnings = append(fv.warnings, "peer "+peer+": "+ans.err.Error())
		why := "replica " + peer + " did not answer: " + ans.err.Error()
		if len(switchIDs) == 0 {
			fv.lacking[""] = append(fv.lacking[""], why)
		}
		for _, id := range asks[peer] {
			fv.lacking[id] = append(fv.lacking[id], "held by "+why)
		}
	}
	fv.view = mergeParts(parts)
	a.checkCoverage(fv, switchIDs, covers)
	return fv
}

// checkCoverage adds to fv the partitions the answers lack, when the
// replicas say what they hold (cluster.Serving): during a rebalance a
// partition is for a while held by no replica (given up by one, loading on
// another), or by another than this replica's membership names. For every
// switch, any partition none of covers holds; for switches asked by name,
// the partitions of those switches in each source of the log (all of them
// while the sources are not known), unless their absence is explained
// already.
func (a *API) checkCoverage(fv *fabricView, switchIDs []string, covers []cluster.Coverage) {
	if !a.peers.Covers() {
		return
	}
	uncovered := cluster.Uncovered(covers...)
	if uncovered == nil {
		return
	}
	missing := uncovered.Partitions
	sources := a.peers.Membership().Sources()
	if len(switchIDs) == 0 || len(sources) == 0 || len(missing) == 0 {
		why := uncovered.Error()
		fv.warnings = append(fv.warnings, why)
		fv.lacking[""] = append(fv.lacking[""], why)
		for _, id := range switchIDs {
			fv.lacking[id] = append(fv.lacking[id], why)
		}
		return
	}
	count := 0
	for _, c := range covers {
		count = max(count, c.Partitions)
	}
	for _, id := range switchIDs {
		if len(fv.lacking[id]) > 0 {
			continue // a replica that did not answer, or no owner: said already
		}
		for _, src := range sources {
			p := polllog.Partition(polllog.Key(src, id), count)
			if _, gone := slices.BinarySearch(missing, p); !gone {
				continue
			}
			why := fmt.Sprintf("its partition %d of source %s is held by no replica that answered (handed over in a rebalance)", p, quote(src))
			fv.lacking[id] = append(fv.lacking[id], why)
			fv.warnings = append(fv.warnings, "switch_id "+quote(id)+": "+why)
		}
	}
}

// asks returns which peers to ask for which switches: every peer for every
// row when switchIDs is empty; else the owners of the switches' partitions
// in each source of the log (every peer, while the sources are not known).
// Partitions nobody holds go to fv's warnings.
func (a *API) asks(fv *fabricView, switchIDs []string) map[string][]string {
	m := a.peers.Membership()
	self := m.Self()
	var others []string
	for _, p := range m.Peers() {
		if p != self {
			others = append(others, p)
		}
	}
	asks := map[string][]string{}
	if len(switchIDs) == 0 {
		for _, p := range others {
			asks[p] = nil
		}
		return asks
	}
	sources := m.Sources()
	ask := func(peer, id string) {
		if !slices.Contains(asks[peer], id) {
			asks[peer] = append(asks[peer], id)
		}
	}
	for _, id := range switchIDs {
		if len(sources) == 0 {
			for _, p := range others {
				ask(p, id)
			}
			continue
		}
		for _, src := range sources {
			switch owner := m.Owner(src, id); owner {
			case self:
			case "":
				why := "no replica holds its partition of source " + quote(src)
				if !slices.Contains(fv.lacking[id], why) {
					fv.lacking[id] = append(fv.lacking[id], why)
					fv.warnings = append(fv.warnings, "switch_id "+quote(id)+": "+why)
				}
			default:
				ask(owner, id)
			}
		}
	}
	return asks
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// subset is s with the rows of switchIDs alone, and every column: the
// columns say which metrics exist, whichever switches have them.
func subset(s *snapshot.Snapshot, switchIDs []string) *snapshot.Snapshot {
	out, err := s.OfSwitches(switchIDs)
	if err != nil {
		return s // rows of a built snapshot build again; keep them all if not
	}
	return out
}

// mergeParts joins the switch-level parts into one snapshot and the
// per-port parts into another, as the aggregator merges its sources: a row
// two parts have is kept once, the first part's (this replica's).
func mergeParts(parts []*snapshot.Snapshot) *snapshot.View {
	var groups [2][]*snapshot.Snapshot
	for _, p := range parts {
		kind := 0
		if snapshot.Subsystem(p.LabelNames()) == schema.PortSubsystem {
			kind = 1
		}
		groups[kind] = append(groups[kind], p)
	}
	var merged [2]*snapshot.Snapshot
	for kind, g := range groups {
		if len(g) == 0 {
			continue
		}
		m, _, err := snapshot.MergeSources(g, nil)
		if err != nil {
			m = g[0] // parts that each built merge; keep this replica's if not
		}
		merged[kind] = m
	}
	return snapshot.NewView(merged[0], merged[1])
}

// appendPartial writes the members of a partial answer: "partial" and the
// warnings; nothing for a whole one.
func appendPartial(b []byte, warnings []string) []byte {
	if len(warnings) == 0 {
		return b
	}
	b = append(b, `,"partial":true,"warnings":[`...)
	for i, w := range warnings {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, w)
	}
	return append(b, ']')
}

// available returns the switches asked for that the answer can show, and
// the answer's warnings: a switch the view lacks because the replica
// holding it did not answer (or nobody holds its partition) is left out,
// with a warning saying so, rather than answered 404. With no switch asked
// it returns none: every switch is shown.
func (fv *fabricView) available(view *snapshot.View, switchIDs []string) (kept, warnings []string) {
	warnings = slices.Clone(fv.warnings)
	if len(switchIDs) == 0 {
		return nil, warnings
	}
	var left []string
	for _, id := range switchIDs {
		if len(fv.lacking[id]) == 0 || hasSwitch(view.Parts(), id) {
			kept = append(kept, id)
		} else if !slices.Contains(left, id) {
			left = append(left, id)
			warnings = append(warnings, "switch_id "+quote(id)+" left out: "+strings.Join(fv.lacking[id], "; "))
		}
	}
	return kept, warnings
}

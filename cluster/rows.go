package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// RowsPath is where a replica serves its own rows to its peers
// (RowsHandler).
const RowsPath = "/api/v1/fabric/rows"

// rowsContentType is the type of a rows answer: poll-log records, each
// preceded by its length as a uvarint, and a zero length after the last, so
// that an answer cut at a record's end is not taken for a whole one.
const rowsContentType = "application/vnd.fabric-telemetry.poll-log-records"

// rowsSource is the source name of the records of a rows answer: they carry
// a part of the replica's view (its switch-level or its per-port rows,
// merged from every source), whose index is the sequence number.
const rowsSource = "view"

// RowsHandler serves GET /api/v1/fabric/rows: the rows of the view src
// holds now, of the switches named by the repeatable switch_id parameter
// (every switch without one), in the poll log's record format, so that
// every value arrives exact. Each part of the view is one poll of the
// records (source "view", its index as sequence number, its time); a
// switch the view does not have is left out; without a view the answer is
// empty. It answers from the replica's own view alone: a peer asks it, and
// it never asks another. With serving (nil: none), the PartitionsHeader
// says which partitions the view it read holds whole.
func RowsHandler(src snapshot.Loader, serving Serving) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			http.Error(w, "bad query: "+err.Error(), http.StatusBadRequest)
			return
		}
		switches := q["switch_id"]
		enc := polllog.Encoder{Partitions: 1}
		var recs []polllog.Record
		var view *snapshot.View
		if c, ok := held(serving, func() { view = src.Load() }); ok {
			w.Header().Set(PartitionsHeader, c.String())
		}
		if view != nil {
			now := time.Now()
			for i, part := range view.Parts() {
				rs, err := enc.EncodeSwitches(polllog.PollID{Source: rowsSource, Seq: uint64(i), PublishTime: now}, part, switches)
				if err != nil {
					http.Error(w, "encoding rows: "+err.Error(), http.StatusInternalServerError)
					return
				}
				recs = append(recs, rs...)
			}
		}
		w.Header().Set("Content-Type", rowsContentType)
		bw := bufio.NewWriter(w)
		var n [binary.MaxVarintLen64]byte
		for _, rec := range recs {
			_, _ = bw.Write(n[:binary.PutUvarint(n[:], uint64(len(rec.Value)))])
			_, _ = bw.Write(rec.Value)
		}
		_ = bw.WriteByte(0) // the end
		_ = bw.Flush()      // a peer that went away is not worth a log line
	})
}

// RowsAnswer is a peer's rows.
type RowsAnswer struct {
	// Parts are one snapshot per part of the peer's view.
	Parts []*snapshot.Snapshot
	// Coverage is the partitions the peer's view held whole, when it says
	// (a partitioned replica whose Membership implements Serving); nil
	// otherwise.
	Coverage *Coverage
}

// Rows asks peer for its rows of switches (every row it has when switches
// is nil) and returns them as it holds them: one snapshot per part of its
// view, every value exact, and the partitions they hold whole when the peer
// says. The request waits for one of the --fanout.max-concurrency slots,
// takes at most Options.Timeout within ctx's deadline, and fails on an
// answer over Options.MaxAnswerBytes.
func (p *Peers) Rows(ctx context.Context, peer string, switches []string) (_ RowsAnswer, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	defer p.observe(ctx, apiRows, peer, time.Now(), &err)
	if err := p.acquire(ctx); err != nil {
		return RowsAnswer{}, err
	}
	defer p.release()
	u := endpoint(peer, RowsPath)
	if len(switches) > 0 {
		u += "?" + url.Values{"switch_id": switches}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return RowsAnswer{}, err
	}
	resp, err := p.client(peer, apiRows, p.opts.MaxAnswerBytes).Do(req)
	if err != nil {
		return RowsAnswer{}, tooLargeFlag(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return RowsAnswer{}, fmt.Errorf("%s answered %s: %s", RowsPath, resp.Status, strings.TrimSpace(string(msg)))
	}
	var ans RowsAnswer
	if h := resp.Header.Get(PartitionsHeader); h != "" {
		c, err := ParseCoverage(h)
		if err != nil {
			return RowsAnswer{}, err
		}
		ans.Coverage = &c
	}
	ans.Parts, err = readRows(bufio.NewReader(resp.Body), p.table, p.opts.MaxAnswerBytes)
	return ans, tooLargeFlag(err)
}

// tooLargeFlag names the flag of an answer over its size limit.
func tooLargeFlag(err error) error {
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("%w (--fanout.max-answer-bytes)", err)
	}
	return err
}

// readRows decodes a rows answer and rebuilds its snapshots, their columns
// named by table.
func readRows(r *bufio.Reader, table *schema.Table, maxBytes int64) ([]*snapshot.Snapshot, error) {
	rb := polllog.NewRebuilder(table)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the answer ends with a zero length
		}
		if err != nil {
			return nil, fmt.Errorf("reading rows: %w", err)
		}
		if n == 0 {
			break
		}
		if n > uint64(maxBytes) {
			return nil, fmt.Errorf("reading rows: a record of %d bytes: %w", n, errTooLarge)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("reading rows: %w", err)
		}
		e, err := polllog.Decode(buf)
		if err != nil {
			return nil, fmt.Errorf("reading rows: %w", err)
		}
		if err := rb.Add(e); err != nil {
			return nil, fmt.Errorf("reading rows: %w", err)
		}
	}
	return rb.Snapshots()
}

package queryapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"testing"
)

// testdata/prometheus-parse-query.jsonl holds Prometheus 3.16's own answers
// to /api/v1/parse_query and /api/v1/format_query, one query a line,
// recorded from the real server (prometheus v0.316.0 built from the module
// proxy) with
//
//	curl -s --data-urlencode "query=$q" http://127.0.0.1:9090/api/v1/parse_query
//
// for each query. The aggregator must answer the same, field for field.
func TestParseAndFormatQueryAsPrometheus(t *testing.T) {
	f, err := os.Open("testdata/prometheus-parse-query.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := newTestAPI(t, fixtureHistory(t), Options{})
	type answer struct {
		Status    string `json:"status"`
		Data      any    `json:"data"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var golden struct {
			Query       string `json:"query"`
			ParseQuery  answer `json:"parse_query"`
			FormatQuery answer `json:"format_query"`
		}
		if err := json.Unmarshal(sc.Bytes(), &golden); err != nil {
			t.Fatal(err)
		}
		n++
		for path, want := range map[string]answer{"/api/v1/parse_query": golden.ParseQuery, "/api/v1/format_query": golden.FormatQuery} {
			code, env := a.do(t, t.Context(), http.MethodPost, path, values("query", golden.Query))
			got := answer{Status: env.Status, ErrorType: env.ErrorType, Error: env.Error}
			if env.Data != nil {
				if err := json.Unmarshal(env.Data, &got.Data); err != nil {
					t.Fatal(err)
				}
			}
			wantCode := http.StatusOK
			if want.Status == "error" {
				wantCode = http.StatusBadRequest
			}
			if code != wantCode || !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(want)
				t.Errorf("%s %q:\n got %d %s\nwant %d %s", path, golden.Query, code, gotJSON, wantCode, wantJSON)
			}
		}
	}
	if err := sc.Err(); err != nil || n == 0 {
		t.Fatalf("read %d queries: %v", n, err)
	}
}

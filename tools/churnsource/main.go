// Command churnsource serves the simulator's per-port fabric in UFM's
// layout, as a telemetry source would, with every switch renamed on every
// request when -churn is set (SW-0001 becomes G000001-SW-0001, then
// G000002-SW-0001, ...): the source whose switch ids change on every poll
// that the history's series budget must hold (tools/history-churn-rss.sh).
// Each request ticks the simulator to the request's time.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/fabrictelemetry/aggregator/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on; its port is printed on start-up")
	switches := flag.Int("switches", 2000, "switches in the fabric")
	ports := flag.Int("ports", 64, "ports per switch")
	churn := flag.Bool("churn", true, "rename every switch on every request")
	flag.Parse()
	sim, err := simulator.New(simulator.Config{Switches: *switches, Ports: *ports, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	var (
		mu  sync.Mutex
		gen int
	)
	http.HandleFunc("/csv/metrics", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		sim.Tick(time.Now())
		body := sim.UFMBody()
		if *churn {
			gen++
			body = bytes.ReplaceAll(body, []byte(",SW-"), fmt.Appendf(nil, ",G%06d-SW-", gen))
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening on", l.Addr())
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(l))
}

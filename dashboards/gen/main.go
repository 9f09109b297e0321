// Command gen writes the dashboards of package dashboards as JSON files into
// a directory (the current one by default; go generate runs it in
// dashboards/).
//
//	go generate ./dashboards
//	go run ./dashboards/gen -out dashboards
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fabrictelemetry/aggregator/dashboards"
	"github.com/fabrictelemetry/aggregator/schema"
)

func main() { os.Exit(run()) }

func run() int {
	out := flag.String("out", ".", "directory to write the dashboard JSON files into")
	flag.Parse()
	files, err := dashboards.All(schema.Default())
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		return 1
	}
	for _, f := range files {
		b, err := dashboards.Marshal(f.Dashboard)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gen: %s: %v\n", f.Name, err)
			return 1
		}
		if err := os.WriteFile(filepath.Join(*out, f.Name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			return 1
		}
	}
	return 0
}

// Command kfake runs an in-process Kafka cluster (franz-go's kfake) on
// loopback until it is interrupted, for the scripts in tools/ that start
// the real binaries against a poll log: it writes the brokers' addresses,
// comma-separated, to -addr-file (and stdout) once they listen.
//
// kfake keeps every record in memory. With -retention it drops the records
// older than that, in segments of 4 MiB, as a broker with log.retention.ms
// and log.segment.bytes would, so that a large fabric published for many minutes
// does not fill the machine.
//
// Run it from tools/ (the module with kfake):
//
//	go run ./kfake -brokers 1 -retention 2m -addr-file /tmp/brokers
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() { os.Exit(run()) }

func run() int {
	brokers := flag.Int("brokers", 1, "brokers of the cluster")
	retention := flag.Duration("retention", 0, "drop records older than this (0 keeps every record)")
	addrFile := flag.String("addr-file", "", "file to write the brokers' addresses to, comma-separated")
	flag.Parse()

	opts := []kfake.Opt{kfake.NumBrokers(*brokers)}
	if *retention > 0 {
		// Records leave with whole segments, and kfake rolls a segment by
		// size only (it accepts log.roll.ms but ignores it): keep them
		// small, or a partition keeps its first 100 MiB whatever its age.
		opts = append(opts, kfake.BrokerConfigs(map[string]string{
			"log.retention.ms":  strconv.FormatInt(retention.Milliseconds(), 10),
			"log.segment.bytes": strconv.Itoa(4 << 20),
		}))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 1
	}
	defer cluster.Close()
	addrs := strings.Join(cluster.ListenAddrs(), ",")
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(addrs+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "kfake:", err)
			return 1
		}
	}
	fmt.Println(addrs)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *retention <= 0 {
		<-ctx.Done()
		return 0
	}
	// kfake applies retention on its own only to topics that set it; the
	// poll log's topic, created by the simulator, does not.
	tick := time.NewTicker(max(*retention/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
			cluster.ApplyRetention()
		}
	}
}

//go:build !unix

package kafkalog

import "time"

// cpuTime is not measured here: the cpu-s metrics read 0.
func cpuTime() time.Duration { return 0 }

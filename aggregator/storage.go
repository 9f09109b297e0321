package aggregator

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// stateFile is where a source's last good snapshot is kept.
func (a *Aggregator) stateFile(src *source) string {
	return filepath.Join(a.cfg.StoragePath, src.cfg.Name+".snapshot")
}

// persist writes the source's snapshot after it was swapped in, so a
// restart serves it again. The write is atomic (temp file, fsync, rename);
// a failure is logged and costs nothing but the next restart's warm start.
func (a *Aggregator) persist(src *source, s *snapshot.Snapshot) {
	if a.cfg.StoragePath == "" {
		return
	}
	if err := snapshot.WriteFile(a.stateFile(src), s); err != nil {
		a.cfg.Logger.Error("Writing state file failed", "source_name", src.cfg.Name, "err", err)
	}
}

// restore publishes every source's state file, with the time it was
// polled at, before the first poll: a restart loses nothing, and /-/ready
// still reflects how fresh that data really is. A missing file is a cold
// start; a corrupt or truncated one is reported and ignored.
func (a *Aggregator) restore() {
	if a.cfg.StoragePath == "" {
		return
	}
	if err := os.MkdirAll(a.cfg.StoragePath, 0o755); err != nil {
		a.cfg.Logger.Error("Storage directory unusable; state will not be kept", "path", a.cfg.StoragePath, "err", err)
		return
	}
	for _, src := range a.sources {
		path := a.stateFile(src)
		s, err := snapshot.ReadFile(path, a.cfg.Schema)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			a.cfg.Logger.Error("Ignoring unreadable state file", "source_name", src.cfg.Name, "path", path, "err", err)
			continue
		}
		a.cfg.Logger.Info("Restored last good snapshot", "source_name", src.cfg.Name, "path", path,
			"time", s.Time(), "rows", s.NumRows())
		a.publishPart(src, s)
	}
}

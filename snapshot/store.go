package snapshot

import "sync/atomic"

// Store publishes snapshots by read-copy-update: one writer builds a new
// Snapshot off to the side and swaps it in with a single atomic store; readers
// load the pointer once per request and never lock. A reader that loaded the
// old snapshot keeps a consistent view until it is done with it.
type Store struct {
	current atomic.Pointer[Snapshot]
}

// Load returns the current snapshot, or nil before the first publish.
func (s *Store) Load() *Snapshot { return s.current.Load() }

// Publish makes snap the snapshot every later Load returns.
func (s *Store) Publish(snap *Snapshot) { s.current.Store(snap) }

package snapshot

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
)

// fileMagic starts every state file; the version is its last byte.
var fileMagic = []byte("FABRICSNAP\x01")

// stateFile is what a state file holds: the snapshot's data, not its
// metric descriptions, which are resolved again from the schema in force.
type stateFile struct {
	Time       time.Time
	LabelNames []string
	Labels     []string
	Columns    []string
	Bits       []uint64
	Kinds      []Kind
}

// WriteFile saves s so that a restarted aggregator serves it again with its
// original time. The write is atomic: a temporary file, fsync, rename, and
// an fsync of the directory, so a crash leaves the old file or the new one.
func WriteFile(path string, s *Snapshot) error {
	var buf bytes.Buffer
	buf.Write(fileMagic)
	buf.Write(make([]byte, 4)) // CRC32 of the payload, filled in below
	state := stateFile{
		Time: s.time, LabelNames: s.labelNames, Labels: s.labels,
		Columns: s.columns, Bits: s.bits, Kinds: s.kinds,
	}
	if err := gob.NewEncoder(&buf).Encode(&state); err != nil {
		return fmt.Errorf("encoding snapshot: %w", err)
	}
	data := buf.Bytes()
	binary.BigEndian.PutUint32(data[len(fileMagic):], crc32.ChecksumIEEE(data[len(fileMagic)+4:]))
	return writeAtomic(path, data)
}

// ReadFile loads a snapshot saved by WriteFile, naming its columns with
// table. A missing file is fs.ErrNotExist; a corrupt or truncated one is an
// error that says so, never a partial snapshot.
func ReadFile(path string, table *schema.Table) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	header := len(fileMagic) + 4
	if len(data) < header || !bytes.Equal(data[:len(fileMagic)], fileMagic) {
		return nil, errors.New("not a snapshot state file (or another version)")
	}
	if binary.BigEndian.Uint32(data[len(fileMagic):]) != crc32.ChecksumIEEE(data[header:]) {
		return nil, errors.New("state file is corrupt or truncated (checksum mismatch)")
	}
	var state stateFile
	if err := gob.NewDecoder(bytes.NewReader(data[header:])).Decode(&state); err != nil {
		return nil, fmt.Errorf("decoding state file: %w", err)
	}
	return state.snapshot(table)
}

func (st *stateFile) snapshot(table *schema.Table) (*Snapshot, error) {
	nl, nc := len(st.LabelNames), len(st.Columns)
	if nl == 0 || len(st.Labels)%nl != 0 || len(st.Bits) != len(st.Kinds) || len(st.Bits) != len(st.Labels)/nl*nc {
		return nil, errors.New("state file is inconsistent")
	}
	b := NewBuilder(st.LabelNames, st.Columns, 0)
	b.labels, b.bits, b.kinds = st.Labels, st.Bits, st.Kinds
	metrics, _ := table.Resolve(Subsystem(st.LabelNames), st.Columns)
	return b.Build(st.Time, metrics)
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("creating temporary state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing state file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing state directory: %w", err)
	}
	return nil
}

package benchsink

import (
	"bytes"
	"io"
	"testing"
)

// TestWriterCountsEveryByte writes more than the scratch buffer holds, in
// pieces smaller and larger than it, and checks the count.
func TestWriterCountsEveryByte(t *testing.T) {
	w := New()
	w.Header().Set("Content-Type", "text/plain")
	body := bytes.Repeat([]byte("0123456789"), 10_000) // 100,000 bytes: three chunks and a rest
	if _, err := io.Copy(w, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body[:7]); err != nil {
		t.Fatal(err)
	}
	if want := int64(len(body) + 7); w.N != want {
		t.Errorf("N = %d, want %d", w.N, want)
	}
	if got := w.Header().Get("Content-Type"); got != "text/plain" {
		t.Errorf("header lost: %q", got)
	}
}

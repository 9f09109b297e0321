package simulator

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{in: "OK", want: ModeOK},
		{in: "ok", want: ModeOK},
		{in: "ERROR_500", want: ModeError500},
		{in: "error_500", want: ModeError500},
		{in: "Corrupt", want: ModeCorrupt},
		{in: "truncated", want: ModeTruncated},
		{in: "EMPTY", want: ModeEmpty},
		{in: "garbage", want: ModeGarbage},
		{in: "TimeOut", want: ModeTimeout},
		{in: "slow", want: ModeSlow},
		{in: "partial", want: ModePartial},
		{in: "schema", want: ModeSchema},
		{in: " flaky ", want: ModeFlaky},
		{in: "", wantErr: true},
		{in: "ERROR500", wantErr: true},
		{in: "bogus", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseMode(%q) = %v, want error", tc.in, got)
				}
				// The error must tell the user what would have worked.
				for _, name := range ModeNames() {
					if !strings.Contains(err.Error(), name) {
						t.Errorf("error %q does not list mode %s", err, name)
					}
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMode(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestModeStringRoundTrip(t *testing.T) {
	if got := len(Modes()); got != 11 {
		t.Fatalf("got %d modes, want 11", got)
	}
	for _, m := range Modes() {
		s := m.String()
		if s != strings.ToUpper(s) {
			t.Errorf("%d.String() = %q, want upper case", int(m), s)
		}
		back, err := ParseMode(s)
		if err != nil || back != m {
			t.Errorf("ParseMode(%q) = %v, %v, want %v", s, back, err, m)
		}
	}
	if got := Mode(99).String(); got != "Mode(99)" {
		t.Errorf("Mode(99).String() = %q", got)
	}
}

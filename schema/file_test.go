package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schema.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFile(t *testing.T) {
	path := writeFile(t, `# Site overrides.
column,metric,type,scale,help
Fan_Speed_RPM,fabric_switch_fan_speed_rpm,gauge,,Fan speed in revolutions per minute.
Temperature_C,fabric_switch_temperature_kelvin_offset,gauge,1,
PortXmitDataExtended,fabric_port_transmit_data_bytes_total,counter,4,"Data transmitted, in bytes (4-octet words)."
`)
	base := Default()
	tab, err := LoadFile(path, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Metric{
		{Column: "Fan_Speed_RPM", Name: "fabric_switch_fan_speed_rpm", Type: Gauge, Scale: 1, Help: "Fan speed in revolutions per minute." + cached, Known: true},
		{Column: "Temperature_C", Name: "fabric_switch_temperature_kelvin_offset", Type: Gauge, Scale: 1, Help: `Value of source column "Temperature_C".` + cached, Known: true},
		{Column: "PortXmitDataExtended", Name: "fabric_port_transmit_data_bytes_total", Type: Counter, Scale: 4, Help: "Data transmitted, in bytes (4-octet words)." + cached, Known: true},
	} {
		if got, ok := tab.Lookup(want.Column); !ok || got != want {
			t.Errorf("Lookup(%q) = %+v, want %+v", want.Column, got, want)
		}
	}
	if got, _ := base.Lookup("Temperature_C"); got.Name != "fabric_switch_temperature_celsius" {
		t.Errorf("base table changed: %+v", got)
	}
	if got, _ := tab.Lookup("Rx_Bytes"); got.Name != "fabric_switch_receive_bytes_total" {
		t.Errorf("entry not in the file lost: %+v", got)
	}
	metrics, _ := tab.Resolve(SwitchSubsystem, []string{"Fan_Speed_RPM"})
	if !metrics[0].Known || metrics[0].Name != "fabric_switch_fan_speed_rpm" {
		t.Errorf("Resolve does not use the file's entry: %+v", metrics[0])
	}
}

func TestLoadFileErrors(t *testing.T) {
	const header = "column,metric,type,scale,help\n"
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "empty file"},
		{"wrong header", "column,name,type,scale,help\n", "line 1: header"},
		{"field count", header + "a,fabric_a,gauge,1\n", "line 2"},
		{"invalid name", header + "a,fabric-a,gauge,1,\n", `line 2: invalid metric name "fabric-a"`},
		{"utf-8 name", header + "a,fabric_ä,gauge,1,\n", `line 2: invalid metric name`},
		{"type", header + "# comment\na,fabric_a,histogram,1,\n", `line 3: metric fabric_a: type "histogram"`},
		{"counter suffix", header + "a,fabric_a,counter,1,\n", "line 2: counter fabric_a: name must end in _total"},
		{"gauge suffix", header + "a,fabric_a_total,gauge,1,\n", "line 2: gauge fabric_a_total"},
		{"scale zero", header + "a,fabric_a,gauge,0,\n", `line 2: metric fabric_a: scale "0"`},
		{"scale inf", header + "a,fabric_a,gauge,+Inf,\n", `scale "+Inf"`},
		{"scale nan", header + "a,fabric_a,gauge,NaN,\n", `scale "NaN"`},
		{"scale text", header + "a,fabric_a,gauge,big,\n", `scale "big"`},
		{"empty column", header + ",fabric_a,gauge,1,\n", "line 2: empty column"},
		{"column twice", header + "a,fabric_a,gauge,1,\nb,fabric_b,gauge,1,\na,fabric_c,gauge,1,\n", `line 4: column "a" already defined on line 2`},
		{"name clash with default", header + "Fan,fabric_switch_power_watts,gauge,1,\n", "both exported as fabric_switch_power_watts"},
		{"reserved", header + "a,fabric_source_up,gauge,1,\n", "reserved"},
		{"reserved for the history", header + "a,fabric_history_series,gauge,1,\n", "reserved"},
		{"reserved for the fan-out", header + "a,fabric_fanout_requests_total,counter,1,\n", "reserved"},
		{"bad quote", header + "a,\"fabric_a,gauge,1,\n", "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.content)
			_, err := LoadFile(path, Default())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want one naming the file and containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.csv"), Default()); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestReportNotes(t *testing.T) {
	tab := Default()
	var notes []string
	tab.ReportNotes(func(n string) { notes = append(notes, n) })
	clash := []string{"Temperature_C", "Temperature_Celsius"}
	for range 3 {
		tab.Resolve(SwitchSubsystem, clash)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "fabric_switch_temperature_celsius_2") {
		t.Fatalf("notes after three polls of one header: %q, want one about the clash", notes)
	}
	tab.Resolve(SwitchSubsystem, []string{"Rx_Bytes"}) // no clash: nothing to report
	tab.Resolve(SwitchSubsystem, append(clash, "Power_W"))
	if len(notes) != 2 {
		t.Errorf("notes after a new header with the clash: %d, want 2", len(notes))
	}
	metrics, ret := Default().Resolve(SwitchSubsystem, clash)
	if len(ret) != 1 || metrics[1].Name != "fabric_switch_temperature_celsius_2" {
		t.Errorf("Resolve without a reporter: %v, %q", metrics, ret)
	}
}

// Package dashboards builds the Grafana dashboards of the fabric telemetry
// aggregator as code, with the Grafana foundation SDK: Fabric overview,
// Switch detail and Aggregator health. The JSON files beside this file are
// generated from it (go generate ./dashboards) and provisioned into Grafana
// as they are; a test holds them equal to what the code generates.
//
// Data metric names come from schema.Default(), looked up by source column,
// so a renamed metric is renamed here too and a removed one fails the
// generator. Self-metric and recording rule names come from package
// monitoring.
//
// The Fabric overview and Switch detail dashboards read only data metrics
// with plain PromQL, so they work on both data sources: the Prometheus
// server and the aggregator's own query API. Aggregator health reads the
// self-metrics and the recording rules, which only the Prometheus server has.
//
// The dashboards use the SDK's classic dashboard schema (package dashboard),
// which the SDK marks deprecated in favour of dashboardv2: Grafana's file
// provisioning loads classic JSON on every version, v2 only behind Grafana
// 12's new dashboard API.
package dashboards

//lint:file-ignore SA1019 Grafana provisions classic (v1) dashboard JSON from files; the SDK's dashboardv2 needs Grafana's new dashboard API. See package doc.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/fabrictelemetry/aggregator/schema"
)

//go:generate go run ./gen

// File is one generated dashboard and the file it is kept in.
type File struct {
	Name      string // file name in dashboards/
	Dashboard dashboard.Dashboard
}

// All builds every dashboard from the given schema table (schema.Default()
// for the committed files).
func All(table *schema.Table) ([]File, error) {
	builders := []struct {
		name  string
		build func(*schema.Table) (dashboard.Dashboard, error)
	}{
		{"fabric-overview.json", FabricOverview},
		{"switch-detail.json", SwitchDetail},
		{"aggregator-health.json", AggregatorHealth},
	}
	files := make([]File, 0, len(builders))
	for _, b := range builders {
		d, err := b.build(table)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		numberPanels(&d)
		files = append(files, File{Name: b.name, Dashboard: d})
	}
	return files, nil
}

// Marshal renders a dashboard the way the committed files are written:
// indented JSON with a final newline, and PromQL's <, > and & as they are
// rather than as \u003c, \u003e and \u0026.
func Marshal(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	// The SDK's panel types marshal themselves with json.Marshal, which
	// escapes HTML whatever the encoder says: undo it. An escape preceded by
	// an odd number of backslashes is an escaped backslash and the text
	// "u003e", and stays.
	return htmlEscape.ReplaceAllFunc(buf.Bytes(), func(m []byte) []byte {
		i := bytes.LastIndexByte(m, '\\')
		if (i-bytes.IndexByte(m, '\\'))%2 == 1 {
			return m
		}
		r := map[string]byte{"003c": '<', "003e": '>', "0026": '&'}[string(m[i+2:])]
		return append(m[:i:i], r)
	}), nil
}

var htmlEscape = regexp.MustCompile(`\\+u00(3c|3e|26)`)

// numberPanels gives every panel and row a stable id in layout order, so
// that links to a panel (viewPanel=N) survive regeneration.
func numberPanels(d *dashboard.Dashboard) {
	var id uint32
	for i := range d.Panels {
		id++
		switch p := d.Panels[i]; {
		case p.Panel != nil:
			v := id
			p.Panel.Id = &v
		case p.RowPanel != nil:
			p.RowPanel.Id = id
			for j := range p.RowPanel.Panels {
				id++
				v := id
				p.RowPanel.Panels[j].Id = &v
			}
		}
	}
}

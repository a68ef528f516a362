package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The example Grafana dashboard parses and queries only metrics that exist.
func TestTheExampleDashboardQueriesExistingMetrics(t *testing.T) {
	b, err := os.ReadFile("../examples/grafana/nftrtpproxy.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("examples/grafana/nftrtpproxy.json: %v", err)
	}
	r := newRig(t)
	var known []string
	ch := make(chan *prometheus.Desc)
	go func() {
		r.met.reg.Describe(ch)
		close(ch)
	}()
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	for desc := range ch {
		if m := name.FindStringSubmatch(desc.String()); m != nil {
			known = append(known, m[1])
		}
	}
	used := regexp.MustCompile(`nftrtpproxy_[a-z_]+`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range used.FindAllString(tg.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if !slices.Contains(known, base) {
					t.Errorf("panel %q queries %s, which is not a metric", p.Title, m)
				}
			}
		}
	}
}

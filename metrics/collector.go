package metrics

import (
	"context"
	"os"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the dump of the relay's flows at a scrape.
const scrapeTimeout = 5 * time.Second

var (
	descSessions = prometheus.NewDesc(namespace+"_sessions", "Sessions now, by switchboard and state (ringing, active).",
		[]string{"switchboard", "state"}, nil)
	descFree = prometheus.NewDesc(namespace+"_port_pairs_free", "RTP/RTCP port pairs a gate can still hand out, by switchboard and gate.",
		[]string{"switchboard", "gate"}, nil)
	descPackets = prometheus.NewDesc(namespace+"_relayed_packets_total", "Packets relayed by the kernel, by switchboard and direction (a-to-b: entering gate-a), from conntrack counters.",
		[]string{"switchboard", "direction"}, nil)
	descBytes = prometheus.NewDesc(namespace+"_relayed_bytes_total", "Bytes (IP packets) relayed by the kernel, by switchboard and direction, from conntrack counters.",
		[]string{"switchboard", "direction"}, nil)
	descFlows     = prometheus.NewDesc(namespace+"_flows", "Conntrack entries of the relay's legs at the last reading.", nil, nil)
	descFlowsRead = prometheus.NewDesc(namespace+"_flows_read_seconds", "Time the last dump of the relay's conntrack entries took.", nil, nil)
	descJournal   = prometheus.NewDesc(namespace+"_journal_bytes", "Size of the session journal file.", nil, nil)
)

// collector reads what the daemon holds at scrape time.
type collector struct {
	m        *Metrics
	sessions Sessions
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descFree, descPackets, descBytes, descFlows, descFlowsRead, descJournal} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, b := range c.sessions.Stats() {
		sb := c.m.cfg.Switchboard(b.Name)
		gauge(descSessions, float64(b.Ringing), b.Name, string(switchboard.Ringing))
		gauge(descSessions, float64(b.Active), b.Name, string(switchboard.Active))
		gauge(descFree, float64(b.FreeA), b.Name, sb.A.Name)
		gauge(descFree, float64(b.FreeB), b.Name, sb.B.Name)
	}
	if fi, err := os.Stat(switchboard.JournalFile(c.m.cfg.StateDir)); err == nil {
		gauge(descJournal, float64(fi.Size()))
	}
	c.collectTraffic(ch)
}

func (c *collector) collectTraffic(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	t := c.m.traffic
	byKey, err := t.totals(ctx, 0)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPackets, err)
		return
	}
	for _, sb := range c.m.cfg.Switchboards {
		for _, dir := range []string{dirAToB, dirBToA} {
			v := byKey[flowKey{sb.Name, dir}]
			ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(v.Packets), sb.Name, dir)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(v.Bytes), sb.Name, dir)
		}
	}
	t.readMu.Lock()
	live, took := t.live, t.took
	t.readMu.Unlock()
	ch <- prometheus.MustNewConstMetric(descFlows, prometheus.GaugeValue, float64(live))
	ch <- prometheus.MustNewConstMetric(descFlowsRead, prometheus.GaugeValue, took.Seconds())
}

package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "nftrtpproxy"

// Metrics holds the relay's metrics and serves them. Build it with New,
// wrap the dataplane with Dataplane, pass it to the Manager as its
// switchboard.Observer, then Watch the Manager.
type Metrics struct {
	reg     *prometheus.Registry
	cfg     *switchboard.Config
	traffic *traffic

	requests, requestErrors *prometheus.CounterVec
	requestTime             *prometheus.HistogramVec
	ends                    *prometheus.CounterVec
	learned, refused        *prometheus.CounterVec
	compactions             prometheus.Counter
	resubscribes            prometheus.Counter
	eventLosses             prometheus.Counter
	txLatency               prometheus.Histogram
	txErrors                prometheus.Counter

	cmdMu    sync.Mutex
	commands map[string]map[string]bool // label values seen per protocol
}

// maxCommands bounds the command label values per protocol: commands come
// from the wire, and a stranger must not grow the registry without end.
const maxCommands = 32

// New returns the metrics of a daemon configured by cfg, with Go runtime
// and process collectors registered.
func New(cfg *switchboard.Config) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), cfg: cfg, commands: map[string]map[string]bool{}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	m.requests = counter("requests_total", "Control requests answered, by protocol and command.", "protocol", "command")
	m.requestErrors = counter("request_errors_total", "Control requests answered with an error, by protocol and command.", "protocol", "command")
	m.requestTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "request_duration_seconds",
		Help:    "Time from a decoded control request to its reply, by protocol and command.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"protocol", "command"})
	m.ends = counter("session_ends_total", "Sessions ended, by switchboard and reason (deleted, ringing-timeout, media-timeout, taken-over, gone).", "switchboard", "reason")
	m.learned = counter("learned_total", "Peers' sources learned by a gate, by switchboard.", "switchboard")
	m.refused = counter("refused_sources_total", "Strangers' flows to a locked gate deleted, by switchboard.", "switchboard")
	m.compactions = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "journal_compactions_total", Help: "Rewrites of the session journal to its live records."})
	m.resubscribes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "conntrack_resubscribes_total", Help: "Times the conntrack event subscription ended and was made again."})
	m.eventLosses = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "conntrack_event_losses_total", Help: "Times the kernel dropped conntrack events because the daemon's socket buffer was full (ENOBUFS)."})
	m.txLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "kernel_transaction_seconds",
		Help:    "Time of one kernel transaction (nftables batch and the conntrack deletions it implies).",
		Buckets: []float64{.00002, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1}})
	m.txErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "kernel_transaction_errors_total", Help: "Kernel transactions that failed."})
	m.reg.MustRegister(m.requests, m.requestErrors, m.requestTime, m.ends, m.learned, m.refused,
		m.compactions, m.resubscribes, m.eventLosses, m.txLatency, m.txErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Dataplane wraps dp so that its transactions are timed, the conntrack
// watch's losses counted and ended flows' counters kept for the traffic
// totals. The Manager must use the wrapped dataplane.
func (m *Metrics) Dataplane(dp relay.Dataplane) relay.Dataplane {
	m.traffic = newTraffic(m.cfg.Switchboards, func(ctx context.Context) ([]relay.Flow, error) { return dp.Flows(ctx) })
	return &dataplane{Dataplane: dp, m: m}
}

// Sessions is what the scrape-time collector reads from the Manager.
type Sessions interface {
	Stats() []switchboard.BoardStats
}

// Watch registers the collector that reads sessions, free ports, the
// journal and the traffic totals at scrape time. Call it once, after
// Dataplane.
func (m *Metrics) Watch(s Sessions) error {
	if m.traffic == nil {
		return errors.New("metrics: Watch before Dataplane")
	}
	return m.reg.Register(&collector{m: m, sessions: s})
}

// Traffic returns the packets and bytes relayed since start (ended flows
// and the flows that exist now), summed over every switchboard. The flows
// are dumped at most once a second for it (ng's statistics may be polled).
func (m *Metrics) Traffic(ctx context.Context) (packets, bytes uint64, err error) {
	if m.traffic == nil {
		return 0, 0, nil
	}
	byKey, err := m.traffic.totals(ctx, time.Second)
	for _, t := range byKey {
		packets += t.Packets
		bytes += t.Bytes
	}
	return packets, bytes, err
}

// Learned counts a learned peer (switchboard.Observer).
func (m *Metrics) Learned(board string) { m.learned.WithLabelValues(board).Inc() }

// Refused counts a stranger's flow deleted (switchboard.Observer).
func (m *Metrics) Refused(board string) { m.refused.WithLabelValues(board).Inc() }

// Compacted counts a journal compaction (switchboard.Observer).
func (m *Metrics) Compacted() { m.compactions.Inc() }

var _ switchboard.Observer = (*Metrics)(nil)

// SessionEnded counts an end by switchboard and reason; give it to a
// session end subscription's Each.
func (m *Metrics) SessionEnded(e switchboard.Ended) {
	m.ends.WithLabelValues(e.Session.Switchboard, string(e.Reason)).Inc()
}

// Observe returns the request hook of one protocol's front end: it counts
// the request and its error and times it. Commands are case-folded, and
// past maxCommands distinct ones (or odd ones) counted as "other".
func (m *Metrics) Observe(protocol string) func(command string, err error, took time.Duration) {
	var mu sync.Mutex
	known := map[string]*commandMetrics{} // by command as sent
	return func(command string, err error, took time.Duration) {
		mu.Lock()
		c := known[command]
		mu.Unlock()
		if c == nil {
			cmd := m.commandLabel(protocol, command)
			c = &commandMetrics{label: cmd, requests: m.requests.WithLabelValues(protocol, cmd),
				time: m.requestTime.WithLabelValues(protocol, cmd)}
			mu.Lock()
			if cmd != "other" && len(known) < 4*maxCommands {
				known[command] = c
			}
			mu.Unlock()
		}
		c.requests.Inc()
		if err != nil {
			m.requestErrors.WithLabelValues(protocol, c.label).Inc()
		}
		c.time.Observe(took.Seconds())
	}
}

// commandMetrics are a command's series, looked up once: a lookup by
// label values hashes them, on every request.
type commandMetrics struct {
	label    string
	requests prometheus.Counter
	time     prometheus.Observer
}

func (m *Metrics) commandLabel(protocol, command string) string {
	c := strings.ToLower(command)
	if c == "" || len(c) > 48 || strings.ContainsFunc(c, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(" -_/{}", r))
	}) {
		return "other"
	}
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	seen := m.commands[protocol]
	if seen == nil {
		seen = map[string]bool{}
		m.commands[protocol] = seen
	}
	if !seen[c] && len(seen) >= maxCommands {
		return "other"
	}
	seen[c] = true
	return c
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Run serves /metrics on l until ctx is done; it returns nil then.
func (m *Metrics) Run(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

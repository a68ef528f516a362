// Command nftrtpbench is the second half of `make bench`: it measures
// nftrtpproxy's kernel path side by side with plain routing and with
// rtpengine in user space, each system in fresh caller–router–callee labs
// of network namespaces (internal/netlab), and prints one markdown table in
// which every figure is a ratio against a baseline measured in the same
// run. It needs root and the binaries of `make build`.
//
//	go run ./cmd/nftrtpbench -bin bin -gobench bin/bench-go.txt -out bench-results.md [-quick]
//	go run ./cmd/nftrtpbench -bin bin -only 3 -profile bin   # and the daemon's CPU profile
//
// What it measures (README "Benchmarks" explains the method):
//  1. CPU per relayed packet: calls of G.711 RTP at 50 packets/s each way
//     through plain routing, nftrtpproxy and rtpengine.
//  2. Flatness: single-flow packet rate and CPU per packet with 10, 10k and
//     100k idle sessions installed.
//  3. Control plane: calls set up and torn down per second with 1 and 8
//     load clients, p50/p99, at 0 and 50k live sessions, against rtpengine.
//  4. Scale and restart: 100k sessions installed and removed through the
//     Manager, the daemon's RSS, and restart to serving after SIGKILL.
//  5. Go benchmarks of the user-space hot paths, read from -gobench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// options are the knobs of a run; -quick scales everything down.
type options struct {
	bin, out, goBench, rtpengine string
	profile                      string // directory of the daemon's CPU profile in measurement 3; empty: none
	quick                        bool
	calls                        []int         // call counts of measurement 1
	warmup, window               time.Duration // of every paced run of measurement 1
	levelWindow                  time.Duration // of the paced runs of measurement 2
	blast                        time.Duration // window of a single-flow run
	blasts                       int           // single-flow runs per point, the best kept
	ctrl                         time.Duration // duration of a control-plane run
	paced                        int           // calls carrying traffic in measurement 2
	levels                       []int         // idle sessions of measurement 2
	live                         int           // live sessions of measurement 3
	scale                        int           // sessions of measurement 4
	clients                      []int         // concurrent control clients
	restartLimit                 time.Duration // how long a restarted daemon may take to serve
	only                         map[int]bool  // measurements to run; empty: all
}

// runs reports whether measurement n is to run.
func (o *options) runs(n int) bool { return len(o.only) == 0 || o.only[n] }

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 14*time.Minute)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.bin, "bin", "bin", "directory with nftrtpproxy (make build)")
	fs.StringVar(&o.out, "out", "bench-results.md", "file the table is written to")
	fs.StringVar(&o.goBench, "gobench", "", "output of `go test -bench` to take the Go benchmarks from")
	fs.StringVar(&o.rtpengine, "rtpengine", "rtpengine", "rtpengine binary (Debian's rtpengine-daemon)")
	fs.BoolVar(&o.quick, "quick", false, "a short run (under 2 minutes): fewer calls, shorter windows, 20k sessions")
	calls := fs.String("calls", "", "call counts of the CPU-per-packet runs (default 1000,2000,3000; -quick 500)")
	window := fs.Duration("window", 0, "measured window of each paced run (default 10s; -quick 4s)")
	only := fs.String("only", "", "run only these measurements, e.g. 1,3 (default all)")
	fs.StringVar(&o.profile, "profile", "", "write the CPU profile of measurement 3's daemon to DIR/"+controlProfile+" (needs -only without 4; profiling perturbs the timings)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.defaults()
	if *window > 0 {
		o.window, o.levelWindow = *window, *window
	}
	var err error
	if *calls != "" {
		if o.calls, err = parseInts(*calls); err != nil {
			return nil, fmt.Errorf("-calls %q: %w", *calls, err)
		}
	}
	if *only != "" {
		ns, err := parseInts(*only)
		if err != nil {
			return nil, fmt.Errorf("-only %q: %w", *only, err)
		}
		o.only = map[int]bool{}
		for _, n := range ns {
			o.only[n] = true
		}
	}
	if err := o.checkProfile(); err != nil {
		return nil, err
	}
	return o, nil
}

// parseInts reads "1,2,3".
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, errors.New("want positive numbers separated by commas")
		}
		out = append(out, n)
	}
	return out, nil
}

func (o *options) defaults() {
	o.clients, o.restartLimit = []int{1, 8}, 120*time.Second
	if o.quick {
		o.restartLimit = time.Minute
		o.calls, o.warmup, o.window, o.blast, o.blasts, o.ctrl = []int{500}, time.Second, 4*time.Second, 2*time.Second, 2, 2*time.Second
		o.paced, o.levels, o.live, o.scale, o.levelWindow = 200, []int{10, 2000, 20000}, 10000, 20000, 4*time.Second
		return
	}
	o.calls, o.warmup, o.window, o.blast, o.blasts, o.ctrl = []int{1000, 2000, 3000}, 2*time.Second, 10*time.Second, 3*time.Second, 3, 4*time.Second
	o.paced, o.levels, o.live, o.scale, o.levelWindow = 500, []int{10, 10000, 100000}, 50000, 100000, 6*time.Second
}

// bench is one run: its options, its table, and what one measurement
// passes to another.
type bench struct {
	o *options
	t *table
	// ctrl holds the control-plane runs of both systems (measurement 3).
	ctrl map[ctrlKey]ctrlResult
	// ctrlIface says how nftrtpproxy was driven in measurement 3.
	ctrlIface string
	// locked is nftrtpproxy's control plane when answers lock the gates.
	locked ctrlResult
	// rtpRSS is rtpengine's resident set with rtpLive calls.
	rtpRSS int64
	// rtpLive is the number of live calls rtpengine is measured with: the
	// live level of measurement 3 unless the open-file limit forbids it.
	rtpLive int
}

// ctrlKey names a control-plane run.
type ctrlKey struct {
	sys           string
	live, clients int
}

func run(ctx context.Context, o *options) error {
	if err := netlab.Available(); err != nil {
		// Like the kernel tests and benchmarks: skip, saying why.
		fmt.Fprintf(os.Stderr, "bench: skipped: the labs need root and network namespaces: %v\n", err)
		return nil
	}
	if _, err := os.Stat(o.bin + "/nftrtpproxy"); err != nil {
		return fmt.Errorf("-bin %q: %w (run make build)", o.bin, err)
	}
	b := &bench{o: o, t: newTable(o.quick), ctrl: map[ctrlKey]ctrlResult{}, rtpLive: o.live}
	if limit := raiseFileLimit(); limit < uint64(4*o.live+rtpengineFDs) {
		b.rtpLive = max(int(limit)-rtpengineFDs, 0) / 4 / 500 * 500
		progress("the open-file limit is %d here: rtpengine can hold %d calls (4 sockets each), not %d", limit, b.rtpLive, o.live)
	}
	b.titles()
	begin := time.Now()
	b.runAll(ctx)
	b.t.took = time.Since(begin)
	md := b.t.markdown()
	fmt.Print("\n" + md)
	if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: table written to %s\n", o.out)
	if b.t.failed > 0 {
		return fmt.Errorf("%d measurement(s) failed; see the table", b.t.failed)
	}
	return ctx.Err()
}

func (b *bench) runAll(ctx context.Context) {
	o := b.o
	if o.runs(1) {
		b.perPacket(ctx)
	}
	if o.runs(2) || o.runs(3) || o.runs(4) {
		b.daemonLab(ctx)
	}
	if o.runs(3) {
		b.rtpengineControl(ctx)
		b.controlRows()
		b.profileRow(ctx) // daemonLab stopped the daemon with SIGTERM: its profile is written
	}
	if o.runs(4) {
		b.managerScale(ctx)
	}
	if o.runs(5) {
		b.goBenchmarks()
	}
}

func (b *bench) titles() {
	o, t := b.o, b.t
	t.title(1, fmt.Sprintf("1. CPU per relayed packet: calls of G.711 RTP (172-byte datagrams) at 50 packets/s each way, %s measured after %s; µs of CPU per delivered packet, per process accounting (/proc/stat whole machine minus other users' processes in brackets)", o.window, o.warmup))
	t.title(2, fmt.Sprintf("2. Flat in the number of sessions: nftrtpproxy with %s idle sessions installed besides the measured ones", joinCounts(o.levels)))
	t.title(3, fmt.Sprintf("3. Control plane: one call = set up + tear down, load clients in the router namespace, %s per run", o.ctrl))
	t.title(4, "4. Scale and restart")
	t.title(5, "5. Go benchmarks (go test -bench -benchmem, same make bench)")
	for n := 1; n <= 5; n++ {
		if !o.runs(n) {
			delete(t.titles, n)
		}
	}
}

func joinCounts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = count(n)
	}
	return strings.Join(s, ", ")
}

// rtpengineFDs is what rtpengine needs besides its media sockets.
const rtpengineFDs = 1000

// raiseFileLimit raises the open-file limit as far as this process may
// (rtpengine holds two sockets per side and call) and returns it. It goes
// through package syscall so that children inherit it.
func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return want.Cur
	}
	lim.Cur = lim.Max // without CAP_SYS_RESOURCE only up to the hard limit
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

// progress tells the person running make bench what is going on.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// withLab builds a fresh lab, runs fn in it and always removes it.
func withLab(ctx context.Context, fn func(*netlab.Lab) error) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	lab, err := netlab.New(lctx, netlab.Options{})
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		if err := lab.Close(); err != nil {
			progress("removing lab %s: %v", lab.Name, err)
		}
	}()
	return fn(lab)
}

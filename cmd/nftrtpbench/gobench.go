package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// goBench is one result line of `go test -bench -benchmem`.
type goBench struct {
	pkg, name      string // short package name; name without "Benchmark" and the -GOMAXPROCS suffix
	ns, b, allocs  float64
	hasMem, hasAll bool
	extra          []string // custom metrics, "value unit" (e.g. "821 heap-B/session")
}

// group is the benchmark's name up to its first "/", and sub the rest.
func (g goBench) group() (group, sub string) {
	group, sub, _ = strings.Cut(g.name, "/")
	return group, sub
}

// parseGoBench reads the benchmark lines of go test output, attributing
// each to the last "pkg:" line.
func parseGoBench(r io.Reader) ([]goBench, error) {
	var out []goBench
	pkg := ""
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := s.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = path.Base(strings.TrimSpace(p))
			continue
		}
		if b, ok := parseBenchLine(line); ok {
			b.pkg = pkg
			out = append(out, b)
		}
	}
	return out, s.Err()
}

// parseBenchLine reads "BenchmarkX/sub-2  123  456 ns/op  7 B/op  8 allocs/op".
func parseBenchLine(line string) (goBench, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return goBench{}, false
	}
	name := strings.TrimPrefix(f[0], "Benchmark")
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	b := goBench{name: name}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return goBench{}, false
		}
		switch f[i+1] {
		case "ns/op":
			b.ns, b.hasAll = v, true
		case "B/op":
			b.b, b.hasMem = v, true
		case "allocs/op":
			b.allocs = v
		default:
			b.extra = append(b.extra, f[i]+" "+f[i+1])
		}
	}
	return b, b.hasAll
}

// goBenchmarks is measurement 5: the Go benchmarks of the same make bench,
// each as a ratio against the first case of its group (key=value cases,
// e.g. ports used=0%) or as a share of one nftrtpproxy control-plane call.
func (b *bench) goBenchmarks() {
	if b.o.goBench == "" {
		b.t.add(5, row{what: "not run", notes: "pass -gobench with the output of go test -bench (make bench does)"})
		return
	}
	f, err := os.Open(b.o.goBench)
	if err != nil {
		b.t.fail(5, "reading the Go benchmarks", err)
		return
	}
	defer f.Close()
	benches, err := parseGoBench(f)
	if err != nil {
		b.t.fail(5, "reading the Go benchmarks", err)
		return
	}
	call := percentile(b.ctrl[ctrlKey{sysRelay, 0, 1}].lat, 50)
	first := map[string]goBench{}
	for _, g := range benches {
		group, sub := g.group()
		key := g.pkg + "." + group
		base, seen := first[key]
		if !seen {
			first[key] = g
		}
		b.t.add(5, goBenchRow(g, base, seen && strings.Contains(sub, "="), call))
	}
}

func goBenchRow(g, base goBench, vsBase bool, call time.Duration) row {
	r := row{what: fmt.Sprintf("%s.Benchmark%s", g.pkg, g.name), measured: dur(time.Duration(g.ns)) + "/op"}
	if g.hasMem {
		r.measured += fmt.Sprintf(", %.0f B/op, %.0f allocs/op", g.b, g.allocs)
	}
	for _, x := range g.extra {
		r.measured += ", " + x
	}
	switch {
	case vsBase:
		_, sub := base.group()
		r.baseline = fmt.Sprintf("%s: %s/op", sub, dur(time.Duration(base.ns)))
		r.ratio = ratio(g.ns / base.ns)
	case call > 0 && g.ns < 10*float64(call.Nanoseconds()): // work of a request's size
		r.baseline = "one nftrtpproxy call (p50, 1 client): " + dur(call)
		r.ratio = fmt.Sprintf("%.2f%% of it", 100*g.ns/float64(call.Nanoseconds()))
	}
	return r
}

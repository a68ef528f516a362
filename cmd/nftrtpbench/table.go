package main

import (
	"bufio"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machine describes where the numbers were taken.
type machine struct {
	cores         int
	cpu, kernel   string
	goVersion, at string
}

func describeMachine() machine {
	m := machine{cores: runtime.NumCPU(), goVersion: runtime.Version(), at: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		for s := bufio.NewScanner(f); s.Scan(); {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// row is one line of the table, in section sec.
type row struct {
	sec                                   int
	what, baseline, measured, ratio, goal string
	met                                   string // "yes", "no…", "failed", "" (no target)
	notes                                 string
}

// table collects the rows of every measurement; stages may add rows to
// any section in any order, the table prints them by section.
type table struct {
	machine machine
	quick   bool
	titles  map[int]string
	rows    []row
	failed  int
	took    time.Duration
}

func newTable(quick bool) *table {
	return &table{machine: describeMachine(), quick: quick, titles: map[int]string{}}
}

func (t *table) title(sec int, s string) { t.titles[sec] = s }
func (t *table) add(sec int, r row)      { r.sec = sec; t.rows = append(t.rows, r) }

// fail records a measurement that could not be taken.
func (t *table) fail(sec int, what string, err error) {
	t.failed++
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	progress("FAILED %s: %v", what, err)
	t.add(sec, row{what: what, met: "failed", notes: msg})
}

func (t *table) markdown() string {
	var b strings.Builder
	mode := "full run"
	if t.quick {
		mode = "-quick run"
	}
	fmt.Fprintf(&b, "#### `make bench` (%s, %s): %d cores (%s), Linux %s, %s, %s\n\n",
		mode, t.took.Round(time.Second), t.machine.cores, t.machine.cpu, t.machine.kernel, t.machine.goVersion, t.machine.at)
	b.WriteString("| measurement | baseline (same run) | measured | ratio | target | met | notes |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, sec := range slices.Sorted(maps.Keys(t.titles)) {
		fmt.Fprintf(&b, "| **%s** | | | | | | |\n", cell(t.titles[sec]))
		for _, r := range t.rows {
			if r.sec == sec {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
					cell(r.what), cell(r.baseline), cell(r.measured), cell(r.ratio), cell(r.goal), cell(r.met), cell(r.notes))
			}
		}
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Formatting helpers.

func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

func ratio(x float64) string {
	switch {
	case math.IsInf(x, 0) || math.IsNaN(x):
		return "—"
	case x >= 100:
		return fmt.Sprintf("%.0f×", x)
	case x >= 10:
		return fmt.Sprintf("%.1f×", x)
	}
	return fmt.Sprintf("%.2f×", x)
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d >= 100*time.Microsecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d >= time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%d ns", d.Nanoseconds())
}

func count(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func rate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

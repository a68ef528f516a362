package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/stat and /proc/<pid>/stat times (USER_HZ,
// 100 on every Linux architecture this runs on).
const userHZ = 100

// pfKthread marks kernel threads in /proc/<pid>/stat's flags (PF_KTHREAD).
const pfKthread = 0x00200000

// cpuSample is the machine's busy time so far, the part of it spent by
// processes outside this benchmark's process tree, and the time of kernel
// threads, in USER_HZ ticks.
type cpuSample struct {
	busy    uint64         // user+nice+system+irq+softirq+steal of all CPUs
	foreign uint64         // utime+stime+cutime+cstime of other users' processes
	kernel  map[int]uint64 // utime+stime of each kernel thread (ksoftirqd, workers)
}

// cpuUse is the CPU time spent between two samples, in seconds.
type cpuUse struct {
	busy, foreign, kernel float64
}

// ours is the machine's busy time minus other users' processes: what the
// benchmark's processes and the kernel (softirqs, kernel threads) spent.
// Never below zero.
func (u cpuUse) ours() float64 { return max(u.busy-u.foreign, 0) }

// until returns the CPU spent from s to later. The foreign part is clamped
// to what the machine spent: a process that exits unreaped takes its time
// with it, so others' time can be under-counted, never over-counted.
func (s cpuSample) until(later cpuSample) cpuUse {
	busy := float64(later.busy-s.busy) / userHZ
	foreign := (float64(later.foreign) - float64(s.foreign)) / userHZ
	return cpuUse{busy: busy, foreign: min(max(foreign, 0), busy), kernel: float64(kernelDelta(s.kernel, later.kernel)) / userHZ}
}

// kernelDelta is the time kernel threads spent between two samples:
// workers come and go, so it is summed thread by thread; a thread that
// appeared spent all of its time in between, one that ended is lost.
func kernelDelta(before, after map[int]uint64) uint64 {
	var d uint64
	for pid, t := range after {
		if t0, ok := before[pid]; !ok {
			d += t
		} else if t >= t0 {
			d += t - t0
		}
	}
	return d
}

// sampleCPU reads /proc/stat and the stat of every process. Processes in
// the tree of self (the benchmark, its daemons and rtpengine) and kernel
// threads count as ours; every other process is foreign: on a shared
// machine its time is subtracted from the whole machine's.
func sampleCPU(self int) (cpuSample, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}, err
	}
	busy, err := parseProcStat(b)
	if err != nil {
		return cpuSample{}, err
	}
	procs, err := readProcs()
	if err != nil {
		return cpuSample{}, err
	}
	foreign, kernel := foreignTicks(procs, self)
	return cpuSample{busy: busy, foreign: foreign, kernel: kernel}, nil
}

// parseProcStat returns user+nice+system+irq+softirq+steal of the "cpu"
// line of /proc/stat (guest time is already inside user and nice).
func parseProcStat(b []byte) (uint64, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var sum uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system [idle iowait] irq softirq steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: field %d: %w", i, err)
		}
		sum += v
	}
	return sum, nil
}

// proc is what the CPU accounting needs of one process.
type proc struct {
	ppid    int
	kthread bool
	ticks   uint64 // utime+stime+cutime+cstime
	own     uint64 // utime+stime
}

func readProcs() (map[int]proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make(map[int]proc, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if p, err := parsePIDStat(b); err == nil {
			procs[pid] = p
		}
	}
	return procs, nil
}

// parsePIDStat reads /proc/<pid>/stat. The command name is in parentheses
// and may itself hold spaces and parentheses, so fields are counted from
// the last ")".
func parsePIDStat(b []byte) (proc, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return proc{}, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, flags 9, utime..cstime 14..17.
	if len(f) < 15 {
		return proc{}, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	var v [6]uint64
	for k, idx := range []int{1, 6, 11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil {
			return proc{}, fmt.Errorf("stat: field %d: %w", idx+3, err)
		}
		v[k] = uint64(max(n, 0))
	}
	return proc{ppid: int(v[0]), kthread: v[1]&pfKthread != 0, ticks: v[2] + v[3] + v[4] + v[5], own: v[2] + v[3]}, nil
}

// foreignTicks sums the times of the processes that are neither kernel
// threads nor in the tree rooted at self, and returns those of kernel
// threads by pid.
func foreignTicks(procs map[int]proc, self int) (foreign uint64, kernel map[int]uint64) {
	kernel = map[int]uint64{}
	ours := map[int]bool{self: true}
	var isOurs func(pid, depth int) bool
	isOurs = func(pid, depth int) bool {
		if v, ok := ours[pid]; ok {
			return v
		}
		p, ok := procs[pid]
		v := ok && depth < 64 && p.ppid > 0 && isOurs(p.ppid, depth+1)
		ours[pid] = v
		return v
	}
	for pid, p := range procs {
		switch {
		case p.kthread:
			kernel[pid] = p.own
		case !isOurs(pid, 0):
			foreign += p.ticks
		}
	}
	return foreign, kernel
}

// procSeconds is the CPU time (utime+stime) process pid has spent, or 0
// when pid is 0 or gone. The kernel derives it from the scheduler's
// runtime of the process, not from tick samples.
func procSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	p, err := parsePIDStat(b)
	if err != nil {
		return 0
	}
	return float64(p.own) / userHZ
}

// quietShare is the share of the machine other users may take for it to
// count as quiet.
const quietShare = 0.05

// waitQuiet waits up to limit for a moment when other users' processes
// take under quietShare of the machine, so that a measurement starts
// undisturbed on a shared machine (nothing stops them from starting again
// meanwhile: the tables report their share of every window).
func waitQuiet(ctx context.Context, limit time.Duration) {
	const slice = 200 * time.Millisecond
	self := os.Getpid()
	deadline := time.Now().Add(limit)
	prev, err := sampleCPU(self)
	for err == nil && time.Now().Before(deadline) && sleepCtx(ctx, slice) == nil {
		var next cpuSample
		if next, err = sampleCPU(self); err != nil {
			return
		}
		if prev.until(next).foreign < quietShare*slice.Seconds()*float64(runtime.NumCPU()) {
			return
		}
		prev = next
	}
}

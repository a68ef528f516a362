package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// controlProfile is the name of the daemon's CPU profile under -profile.
const controlProfile = "nftrtpproxy-control.pprof"

// ownCode is the import path prefix of the daemon's own functions.
const ownCode = "github.com/nftrtpproxy/nftrtpproxy/"

// profileTop is how many of the daemon's own functions the table names.
const profileTop = 8

// checkProfile validates -profile DIR against the measurements to run and
// makes DIR absolute (the daemon runs in another directory) and present.
func (o *options) checkProfile() error {
	if o.profile == "" {
		return nil
	}
	if !o.runs(3) {
		return fmt.Errorf("-profile %q: it profiles the daemon of measurement 3, which -only leaves out", o.profile)
	}
	if o.runs(4) {
		return fmt.Errorf("-profile %q: measurement 4 kills the daemon with SIGKILL, which loses its profile; add -only 3 (or -only 2,3)", o.profile)
	}
	dir, err := filepath.Abs(o.profile)
	if err != nil {
		return fmt.Errorf("-profile %q: %w", o.profile, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("-profile: %w", err)
	}
	o.profile = dir
	return nil
}

// daemonArgs are the daemon's flags besides -config: a CPU profile of its
// whole run under -profile.
func (b *bench) daemonArgs() []string {
	if b.o.profile == "" {
		return nil
	}
	return []string{"-cpuprofile", filepath.Join(b.o.profile, controlProfile)}
}

// profileRow names the profile of measurement 3's daemon, written when it
// stopped, the command that reads it, and the daemon's own functions that
// took most of the ng requests' CPU.
func (b *bench) profileRow(ctx context.Context) {
	if b.o.profile == "" {
		return
	}
	path := filepath.Join(b.o.profile, controlProfile)
	bin := filepath.Join(b.o.bin, "nftrtpproxy")
	progress("daemon CPU profile written to %s", path)
	r := row{what: "where the daemon's CPU goes: its CPU profile over its whole run (-profile)", measured: path,
		notes: fmt.Sprintf("read it with `go tool pprof -top %s %s`", bin, path)}
	total, fns, err := pprofTop(ctx, bin, path, `frontend/ng\.`)
	if err == nil && len(fns) == 0 {
		err = errors.New("no function of the daemon's own in it")
	}
	if err != nil {
		r.notes += fmt.Sprintf("; no summary: %v", err)
		b.t.add(3, r)
		return
	}
	r.notes += fmt.Sprintf(". It covers every nftrtpproxy run above and the idle sessions' set-up over HTTP (%s). "+
		"Under the ng server (-focus 'frontend/ng\\.'), the daemon's function of each package with the largest cumulative share of the whole profile: %s",
		total, describeTop(topPerPackage(fns, profileTop)))
	b.t.add(3, r)
}

// pprofFunc is one function of `go tool pprof -top -cum`: its name without
// the module path, and its cumulative share of the profile in per cent.
type pprofFunc struct {
	name string
	cum  float64
}

func describeTop(fns []pprofFunc) string {
	s := make([]string, len(fns))
	for i, f := range fns {
		s[i] = f.name + " " + pct(f.cum/100)
	}
	return strings.Join(s, "; ")
}

// pprofTop runs `go tool pprof -top -cum` on the profile at path, limited
// to the samples whose stack matches focus, and returns its "Duration"
// line and the daemon's own functions, by cumulative share.
func pprofTop(ctx context.Context, bin, path, focus string) (string, []pprofFunc, error) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gotool, "tool", "pprof", "-top", "-cum", "-nodecount=500", "-focus="+focus, bin, path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", nil, fmt.Errorf("go tool pprof: %w", err)
	}
	total, fns := parsePprofTop(string(out))
	return total, fns, nil
}

// parsePprofTop reads the output of `go tool pprof -top -cum`: the
// "Duration: …, Total samples = …" line, and the daemon's own functions
// in the order listed, the module path left out.
func parsePprofTop(out string) (total string, fns []pprofFunc) {
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "Duration:") {
			total = line
			continue
		}
		// flat flat% sum% cum cum% name
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[5], ownCode) {
			continue
		}
		cum, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err != nil {
			continue
		}
		fns = append(fns, pprofFunc{name: strings.TrimPrefix(strings.Join(f[5:], " "), ownCode), cum: cum})
	}
	return total, fns
}

// topPerPackage picks from fns (sorted by cumulative share) the first
// function of each package, up to n: the entry of each layer a request
// crosses, without the chain of callers that only pass the work on.
func topPerPackage(fns []pprofFunc, n int) []pprofFunc {
	var out []pprofFunc
	seen := map[string]bool{}
	for _, f := range fns {
		if pkg := packageOf(f.name); !seen[pkg] && len(out) < n {
			seen[pkg] = true
			out = append(out, f)
		}
	}
	return out
}

// packageOf is the package path of a function name as pprof prints it:
// "calls/sdprelay.(*Engine).apply" is in calls/sdprelay.
func packageOf(fn string) string {
	slash := strings.LastIndex(fn, "/") + 1
	if dot := strings.Index(fn[slash:], "."); dot >= 0 {
		return fn[:slash+dot]
	}
	return fn
}

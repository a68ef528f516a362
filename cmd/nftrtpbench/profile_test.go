package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestProfileNeedsMeasurement3WithoutTheRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prof")
	for _, c := range []struct {
		args []string
		want string // in the error; empty: no error
	}{
		{[]string{"-profile", dir}, "measurement 4"},
		{[]string{"-only", "3,4", "-profile", dir}, "measurement 4"},
		{[]string{"-only", "1", "-profile", dir}, "measurement 3"},
		{[]string{"-only", "2,3", "-profile", dir}, ""},
	} {
		o, err := parseFlags(c.args)
		if c.want == "" {
			if err != nil {
				t.Errorf("%v: %v", c.args, err)
			} else if o.profile != dir {
				t.Errorf("%v: profile %q, want %q", c.args, o.profile, dir)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one naming %q", c.args, err, c.want)
		}
	}
}

func TestProfileDirIsMadeAbsoluteForTheDaemon(t *testing.T) {
	t.Chdir(t.TempDir())
	o, err := parseFlags([]string{"-only", "3", "-profile", "p"})
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(o.profile) || filepath.Base(o.profile) != "p" {
		t.Fatalf("profile %q, want an absolute path ending in p", o.profile)
	}
	b := &bench{o: o}
	if got := b.daemonArgs(); !slices.Equal(got, []string{"-cpuprofile", filepath.Join(o.profile, controlProfile)}) {
		t.Fatalf("daemon args %q", got)
	}
	if got := (&bench{o: &options{}}).daemonArgs(); got != nil {
		t.Fatalf("daemon args without -profile: %q", got)
	}
}

// pprofOut is the start of `go tool pprof -top -cum -focus=frontend/ng\.`
// on a profile of make bench-profile.
const pprofOut = `File: nftrtpproxy
Type: cpu
Duration: 33.86s, Total samples = 14.59s (43.09%)
Active filters:
   focus=frontend/ng\.
Showing nodes accounting for 3.61s, 24.74% of 14.59s total
      flat  flat%   sum%        cum   cum%
         0     0%     0%      7.89s 54.08%  github.com/nftrtpproxy/nftrtpproxy/frontend/ng.(*Server).Run.func2
     0.03s  0.21%  0.21%      7.89s 54.08%  github.com/nftrtpproxy/nftrtpproxy/frontend/ng.(*Server).serve
     0.02s  0.14%  0.34%      7.14s 48.94%  github.com/nftrtpproxy/nftrtpproxy/frontend/ng.(*Server).receive
     0.01s 0.069%  0.55%      3.36s 23.03%  github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay.(*Engine).apply
     0.01s 0.069%  0.62%      3.34s 22.89%  github.com/nftrtpproxy/nftrtpproxy/switchboard.(*Manager).submit
     3.13s 21.45% 22.21%      3.13s 21.45%  internal/runtime/syscall/linux.Syscall6
     0.01s 0.069% 22.28%      3.06s 20.97%  github.com/nftrtpproxy/nftrtpproxy/switchboard.(*Manager).Change
     0.01s 0.069% 22.34%      2.26s 15.49%  github.com/nftrtpproxy/nftrtpproxy/switchboard.(*Manager).applyGroup
     0.01s 0.069% 22.41%      2.25s 15.42%  github.com/nftrtpproxy/nftrtpproxy/switchboard.(*Manager).apply
     0.01s 0.069% 22.62%      2.17s 14.87%  github.com/nftrtpproxy/nftrtpproxy/relay.(*nftDataplane).commitLegs
         0     0% 22.55%      1.85s 12.68%  github.com/nftrtpproxy/nftrtpproxy/calls.(*Calls).Offer
         0     0% 22.55%      1.85s 12.68%  github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngcalls.(*Backend).Offer
         0     0% 23.24%      1.43s  9.80%  github.com/nftrtpproxy/nftrtpproxy/frontend/ng.(*Server).delete
         0     0% 23.24%      1.13s  7.75%  github.com/nftrtpproxy/nftrtpproxy/calls.(*Calls).Delete
`

func TestPprofTopReadsTheDaemonsOwnFunctions(t *testing.T) {
	total, fns := parsePprofTop(pprofOut)
	if total != "Duration: 33.86s, Total samples = 14.59s (43.09%)" {
		t.Errorf("total %q", total)
	}
	if len(fns) != 13 {
		t.Fatalf("%d functions, want 13 (the runtime's left out): %v", len(fns), fns)
	}
	if want := (pprofFunc{"calls/sdprelay.(*Engine).apply", 23.03}); fns[3] != want {
		t.Errorf("4th function %v, want %v", fns[3], want)
	}
}

func TestTopPerPackageNamesEachLayerOnce(t *testing.T) {
	_, fns := parsePprofTop(pprofOut)
	got := describeTop(topPerPackage(fns, 5))
	want := "frontend/ng.(*Server).Run.func2 54.08%; calls/sdprelay.(*Engine).apply 23.03%; " +
		"switchboard.(*Manager).submit 22.89%; relay.(*nftDataplane).commitLegs 14.87%; calls.(*Calls).Offer 12.68%"
	if got != want {
		t.Errorf("top\n got %s\nwant %s", got, want)
	}
	if got := topPerPackage(fns, 7); len(got) != 6 { // frontend/ng/ngcalls is the 6th package
		t.Errorf("top 7 of 6 packages: %v", got)
	}
}

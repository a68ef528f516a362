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

func TestPprofTopKeepsTheDaemonsOwnFunctions(t *testing.T) {
	out := `File: nftrtpproxy
Type: cpu
Duration: 35.20s, Total samples = 12.50s (35.51%)
Active filters:
   focus=frontend/ng\.
Showing nodes accounting for 6.10s, 48.80% of 12.50s total
      flat  flat%   sum%        cum   cum%
         0     0%     0%      6.10s 48.80%  github.com/nftrtpproxy/nftrtpproxy/frontend/ng.(*Server).Run.func1
     0.10s  0.8%  0.8%      5.90s 47.20%  github.com/nftrtpproxy/nftrtpproxy/frontend/ng.(*Server).handle
         0     0%   0.8%     3.00s 24.00%  syscall.Syscall
     0.20s  1.6%  2.4%      2.50s 20.00%  github.com/nftrtpproxy/nftrtpproxy/calls.(*Calls).Offer
     0.20s  1.6%  4.0%      2.00s 16.00%  github.com/nftrtpproxy/nftrtpproxy/relay.(*nftDataplane).Apply
`
	total, top := parsePprofTop(out, 2)
	if total != "Duration: 35.20s, Total samples = 12.50s (35.51%)" {
		t.Errorf("total %q", total)
	}
	want := []string{"48.80% frontend/ng.(*Server).Run.func1", "47.20% frontend/ng.(*Server).handle"}
	if !slices.Equal(top, want) {
		t.Errorf("top %q, want %q", top, want)
	}
	if _, top := parsePprofTop(out, 10); len(top) != 4 || top[2] != "20.00% calls.(*Calls).Offer" {
		t.Errorf("top of 10: %q", top)
	}
}

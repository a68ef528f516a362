// Package statedir keeps one daemon per state directory: Acquire takes an
// exclusive flock(2) on the directory's "lock" file, which holds the
// holder's pid, so that a second daemon started on the same directory (a
// debug run next to the service) refuses to start before it changes
// anything, and its error names the holder. The kernel drops the lock when
// the holder's process ends, however it ends, so a crash leaves no stale
// lock behind; the pid left in the file is only informative.
package statedir

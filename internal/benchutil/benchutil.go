// Package benchutil holds what the side-by-side benchmarks under bench/
// share: medians of step times, their printing, and a process's peak RSS.
package benchutil

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// Median returns the median of v (the upper one for an even count); v is
// not changed.
func Median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// FormatTimes prints seconds with three decimals, space-separated.
func FormatTimes(ts []float64) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.FormatFloat(t, 'f', 3, 64)
	}
	return strings.Join(parts, " ")
}

// PeakRSSKB is this process's peak resident set (VmHWM) in KiB, 0 where
// /proc does not tell.
func PeakRSSKB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

// Package benchutil holds what the side-by-side benchmarks under bench/
// share: medians of step times, their printing, a process's peak RSS, random
// language-modelling rows and per-step timing.
package benchutil

import (
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pltune/pltune/tokenize"
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

// RandomLMRows returns n language-modelling rows of seq random ids below
// vocab, each one whole sequence trained on itself, drawn from r in order.
func RandomLMRows(r *rand.Rand, n, seq, vocab int) []tokenize.PackedRow {
	rows := make([]tokenize.PackedRow, n)
	for i := range rows {
		var row tokenize.PackedRow
		for t := range seq {
			id := r.IntN(vocab)
			row.IDs, row.Labels = append(row.IDs, id), append(row.Labels, id)
			row.PositionIDs, row.SegmentIDs = append(row.PositionIDs, t), append(row.SegmentIDs, 1)
		}
		rows[i] = row
	}
	return rows
}

// StepTimes collects the wall time of each training step after the first
// Warmup ones; call Observe from the trainer's OnStep.
type StepTimes struct {
	Warmup int
	Times  []float64
	last   time.Time
}

// NewStepTimes starts the clock for the first step.
func NewStepTimes(warmup int) *StepTimes { return &StepTimes{Warmup: warmup, last: time.Now()} }

// Observe ends step (1-based) and records its time when it is past warm-up.
func (s *StepTimes) Observe(step int) {
	now := time.Now()
	if step > s.Warmup {
		s.Times = append(s.Times, now.Sub(s.last).Seconds())
	}
	s.last = now
}

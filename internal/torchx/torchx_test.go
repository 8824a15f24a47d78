package torchx

import (
	"runtime"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestManualSeedRepeats(t *testing.T) {
	draw := func() []float64 {
		ManualSeed(42)
		x := ts.MustRandn([]int64{5}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		return x.Float64Values()
	}
	a, b := draw(), draw()
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different draws: %v vs %v", a, b)
	}
	ManualSeed(43)
	c := ts.MustRandn([]int64{5}, gotch.Float, gotch.CPU)
	defer c.MustDrop()
	if slices.Equal(a, c.Float64Values()) {
		t.Fatal("different seeds gave the same draw")
	}
}

func TestNumThreads(t *testing.T) {
	old := NumThreads()
	SetNumThreads(1)
	if NumThreads() != 1 {
		t.Fatalf("NumThreads = %d after SetNumThreads(1)", NumThreads())
	}
	SetNumThreads(old)
}

func TestNoGradRestores(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, start := range []bool{true, false} {
		SetGradEnabled(start)
		NoGrad(func() {
			if SetGradEnabled(false) {
				t.Error("grad mode on inside NoGrad")
			}
		})
		if got := SetGradEnabled(true); got != start {
			t.Errorf("after NoGrad grad mode = %v, want %v restored", got, start)
		}
	}
}

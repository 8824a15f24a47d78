// Package torchx exposes the few libtorch calls pltune needs that gotch
// compiles but does not wrap in Go: seeding libtorch's generators and its
// thread count, and a grad-mode switch that restores the previous state.
package torchx

/*
#include <stdint.h>
void at_manual_seed(int64_t);
void at_set_num_threads(int);
int at_get_num_threads();
int at_grad_set_enabled(int);
#include <malloc.h>
*/
import "C"

import (
	"runtime"

	"github.com/sugarme/gotch"
	_ "github.com/sugarme/gotch/libtch" // defines the C functions above
	"github.com/sugarme/gotch/ts"
)

// ManualSeed seeds libtorch's default generators (CPU and CUDA), as
// torch.manual_seed does.
func ManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// SetNumThreads sets libtorch's intra-op thread count.
func SetNumThreads(n int) { C.at_set_num_threads(C.int(n)) }

// NumThreads is libtorch's intra-op thread count.
func NumThreads() int { return int(C.at_get_num_threads()) }

// SetGradEnabled turns libtorch's grad mode on or off for the calling OS
// thread and returns the previous state. gotch's ts.GradSetEnabled misreads
// that previous state (it reads a C int as a Go int), so pltune uses this.
func SetGradEnabled(on bool) bool {
	b := 0
	if on {
		b = 1
	}
	return C.at_grad_set_enabled(C.int(b)) == 1
}

// GradEnabled tells whether grad mode is on for the calling OS thread
// (lock the goroutine to its thread for the answer to stay true).
func GradEnabled() bool {
	prev := SetGradEnabled(true)
	SetGradEnabled(prev)
	return prev
}

// NoGrad runs fn with grad mode off and restores the previous state
// afterwards, also when fn panics. Grad mode belongs to the OS thread, so
// the goroutine is locked to its thread meanwhile.
func NoGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := SetGradEnabled(false)
	defer SetGradEnabled(prev)
	fn()
}

// Float64s copies t's values to the host as float64, freeing t when drop
// is set. gotch's Tensor.Float64Values leaves its converted copy to the
// garbage collector, which frees libtorch memory late and unpredictably.
func Float64s(t *ts.Tensor, drop bool) []float64 {
	d := t.MustTotype(gotch.Double, drop)
	defer d.MustDrop()
	out := make([]float64, d.Numel())
	if len(out) > 0 {
		d.MustCopyData(out, uint(len(out)))
	}
	return out
}

// ReleaseFreeMemory returns the C heap's free pages to the system
// (glibc's malloc_trim). libtorch frees a training step's activations
// through malloc, and glibc keeps large freed blocks in its arenas once its
// dynamic mmap threshold has risen: measured on the tiny Llama, resident
// memory grew by 100–200 MB a step while the bytes in use stayed constant.
// Trimming once per optimizer step keeps resident memory at what is used.
func ReleaseFreeMemory() { C.malloc_trim(0) }

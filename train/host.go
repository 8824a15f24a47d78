package train

import (
	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch/ts"
)

// What an Objective written outside pltune needs of libtorch beyond gotch's
// tensors.

// NoGrad runs fn with libtorch's gradient recording off, as
// torch.no_grad() does (a reference model's forward pass, a metric), and
// restores the previous mode. Grad mode belongs to the OS thread, so the
// goroutine stays locked to its thread meanwhile.
func NoGrad(fn func()) { torchx.NoGrad(fn) }

// SetGradEnabled turns libtorch's gradient recording on the calling OS
// thread on or off and returns the previous setting (call it with the
// goroutine locked to its thread).
func SetGradEnabled(on bool) (prev bool) { return torchx.SetGradEnabled(on) }

// HostFloat64s copies t's values (any dtype, any device) into Go memory as
// float64. t stays the caller's; the temporary copies are freed at once
// rather than left to the garbage collector, as gotch's Float64Values
// leaves them.
func HostFloat64s(t *ts.Tensor) []float64 { return torchx.Float64s(t, false) }

// Package gradcheck compares gradient sets in tests of packages that train
// (train, align): two computations of the same gradients, such as the plain
// and the checkpointed path, must agree to float32 rounding.
package gradcheck

import (
	"math"
	"testing"
)

// Compare fails when two gradient sets differ anywhere by more than
// tol times the tensor's largest |gradient| (at least 1), or one has a
// gradient the other lacks. The two paths agree to float32 rounding, not
// bit for bit: the checkpointed attention recomputes its probabilities as
// exp(scores − logsumexp) where autograd keeps softmax's, and the head
// runs in chunks. Measured here: at most 1.6e-6 × scale elementwise, at
// most 8e-7 relative in L2 per tensor.
func Compare(t testing.TB, got, want map[string][]float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d gradients, want %d", len(got), len(want))
	}
	nonzero := 0
	for name, w := range want {
		g := got[name]
		if (g == nil) != (w == nil) || len(g) != len(w) {
			t.Errorf("%s: gradient presence/size %d vs %d", name, len(g), len(w))
			continue
		}
		worst, scale := 0.0, 1.0
		for i := range w {
			worst = math.Max(worst, math.Abs(g[i]-w[i]))
			scale = math.Max(scale, math.Abs(w[i]))
			if w[i] != 0 {
				nonzero++
			}
		}
		if worst > tol*scale {
			t.Errorf("%s: gradients differ by %.3g (> %g × %.3g, the largest |gradient| or 1)", name, worst, tol, scale)
		}
	}
	if nonzero == 0 {
		t.Error("every gradient is zero: the comparison proves nothing")
	}
}

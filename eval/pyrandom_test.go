package eval

import (
	"slices"
	"testing"
)

// The expected values are CPython 3.11's: random.Random(1234).getrandbits(32)
// three times, and sample(range(n), k) in sequence on one generator.
func TestPyRandom(t *testing.T) {
	r := newPyRandom(1234)
	for i, want := range []uint32{4150886329, 3342196574, 1892932127} {
		if got := r.uint32(); got != want {
			t.Errorf("draw %d: %d; want %d", i, got, want)
		}
	}
	r = newPyRandom(1234)
	for i, want := range [][]int{{7, 1, 0}, {1, 0, 9}, {1, 5, 3}} {
		if got := r.sample(10, 3); !slices.Equal(got, want) {
			t.Errorf("pool sample %d: %v; want %v", i, got, want)
		}
	}
	// n above the set size: the set-based branch.
	r = newPyRandom(1234)
	for i, want := range [][]int{{99, 56, 14, 0, 11, 74}, {4, 85, 88, 10, 12, 98}} {
		if got := r.sample(100, 6); !slices.Equal(got, want) {
			t.Errorf("set sample %d: %v; want %v", i, got, want)
		}
	}
	if got := newPyRandom(1234).sample(5, 5); !slices.Equal(got, []int{3, 0, 4, 2, 1}) {
		t.Errorf("full shuffle: %v", got)
	}
}

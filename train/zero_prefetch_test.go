package train

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch/ts"
)

// logComm is rank 0 of a pretend 2-rank group whose collectives leave the
// tensors as they are and log their order.
type logComm struct {
	mu  sync.Mutex
	log []string
}

func (c *logComm) Rank() int { return 0 }
func (c *logComm) Size() int { return 2 }
func (c *logComm) add(op string, ts []*ts.Tensor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n []uint
	for _, t := range ts {
		n = append(n, t.Numel())
	}
	c.log = append(c.log, fmt.Sprint(op, n))
}
func (c *logComm) AllReduceSum(ts []*ts.Tensor) error { c.add("all-reduce", ts); return nil }
func (c *logComm) Broadcast(ts []*ts.Tensor, root int) error {
	c.add(fmt.Sprint("broadcast from ", root), ts)
	return nil
}

// TestZeroPrefetchOrder: with the next unit prefetched in a goroutine,
// stage 3 issues the same collectives as without, in an order that does
// not vary from run to run (so ranks stay in step), and the gathers do use
// the prefetched units.
func TestZeroPrefetchOrder(t *testing.T) {
	torchx.SetGradEnabled(true)
	run := func(prefetch string) ([]string, int) {
		t.Setenv("PLTUNE_ZERO3_PREFETCH", prefetch)
		m, obj := zeroTinyLlama(t, true, false)
		defer m.Drop()
		c := &logComm{}
		cfg := DefaultTrainerConfig()
		cfg.OutDir, cfg.LR, cfg.MaxSteps, cfg.BatchSize, cfg.NoFinalCheckpoint = t.TempDir(), 1e-3, 2, 1, true
		cfg.ZeroStage, cfg.Model, cfg.Comm = 3, m, c
		tr, err := NewTrainer(cfg, m.NamedParameters(), obj, nil)
		if err != nil {
			t.Fatal(err)
		}
		hits := 0
		prefetchHook = func(unit int) { hits++ }
		defer func() { prefetchHook = nil }()
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return c.log, hits
	}
	off, offHits := run("off")
	on, onHits := run("")
	again, _ := run("")
	// The backward's prefetch moves a layer's gather before the previous
	// layer's gradient reduction: the same collectives, in an order fixed
	// by the program (so the same on every rank), run after run.
	if !slices.Equal(on, again) {
		t.Errorf("the collectives' order with prefetching differs between two runs:\n%v\n%v", on, again)
	}
	a, b := slices.Clone(on), slices.Clone(off)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("prefetching changes the collectives:\n on: %v\noff: %v", on, off)
	}
	// Two layers and the head (the final norm): per step layer 1 and the
	// head in the forward, layer 0 in the backward.
	if offHits != 0 || onHits != 2*3 {
		t.Errorf("%d prefetched gathers used (%d with prefetching off), want 6 (0)", onHits, offHits)
	}
}

package train

import (
	"os"

	"github.com/sugarme/gotch/ts"
)

// Prefetch of the next unit under ZeRO stage 3. pltune's c10d shim only
// has blocking collectives (each call waits for its Gloo/NCCL work
// handles), so the overlap is a goroutine: after gather installs unit u,
// a goroutine gathers the unit the pass needs next (u+1 in the forward
// pass, u−1 in the backward) over the raw communicator while the caller
// computes u. Collectives must be issued in the same order on every rank:
// every other collective of the optimizer goes through prefetchComm,
// which first waits for the goroutine to finish, so the order is the
// program's on every rank (the gathers a pass makes are the same on all
// of them). A pass ends with no prefetch in flight: the last unit a
// pass gathers (the head in the forward, layer 0 or the embedding in the
// backward) starts none. PLTUNE_ZERO3_PREFETCH=off turns it off (to
// measure it).

// unitPrefetch is one unit's gather in flight.
type unitPrefetch struct {
	unit int
	full map[int]*ts.Tensor
	err  error
	done chan struct{}
}

// prefetchComm is the optimizer's communicator: each collective waits for
// the prefetch in flight first.
type prefetchComm struct {
	Communicator
	z *zeroOptimizer
}

func (c prefetchComm) AllReduceSum(t []*ts.Tensor) error {
	c.z.waitPrefetch()
	return c.Communicator.AllReduceSum(t)
}

func (c prefetchComm) Broadcast(t []*ts.Tensor, root int) error {
	c.z.waitPrefetch()
	return c.Communicator.Broadcast(t, root)
}

// setupPrefetch routes z's collectives through prefetchComm (stage 3, more
// than one rank, not turned off).
func (z *zeroOptimizer) setupPrefetch() {
	if z.world < 2 || os.Getenv("PLTUNE_ZERO3_PREFETCH") == "off" {
		return
	}
	z.raw = z.comm
	z.comm = prefetchComm{Communicator: z.comm, z: z}
}

// nextUnit is the unit a pass gathers after unit (gathered for a backward
// when backward is set), -2 when none is known.
func (z *zeroOptimizer) nextUnit(unit int, backward bool) int {
	head := len(z.unitParams) - 2
	switch {
	case unit == head:
		return -2
	case !backward:
		return unit + 1
	case unit >= 0:
		return unit - 1
	}
	return -2
}

// startPrefetch starts gathering unit in a goroutine (nothing when
// prefetching is off or the unit has nothing to gather).
func (z *zeroOptimizer) startPrefetch(unit int) {
	if z.raw == nil || unit < -1 || len(z.unitParams[unit+1]) == 0 {
		return
	}
	// Allocated here, not on the goroutine: glibc's malloc would serve
	// the goroutine's thread from another arena, whose freed blocks the
	// training thread does not reuse (bench/zero measured up to +70 MB of
	// peak RSS that way).
	p := &unitPrefetch{unit: unit, full: z.allocUnit(unit), done: make(chan struct{})}
	z.pending = p
	go func() {
		defer close(p.done)
		p.err = z.fillUnit(unit, p.full, z.raw)
	}()
}

// waitPrefetch waits for the prefetch in flight, if any.
func (z *zeroOptimizer) waitPrefetch() {
	if z.pending != nil {
		<-z.pending.done
	}
}

// takePrefetch returns unit's prefetched tensors (nil, nil when the
// prefetch was of another unit or there was none; it is dropped).
func (z *zeroOptimizer) takePrefetch(unit int) (map[int]*ts.Tensor, error) {
	p := z.pending
	if p == nil {
		return nil, nil
	}
	<-p.done
	z.pending = nil
	if p.unit == unit || p.err != nil {
		if prefetchHook != nil {
			prefetchHook(unit)
		}
		return p.full, p.err
	}
	for _, f := range p.full {
		f.MustDrop()
	}
	return nil, nil
}

// prefetchHook, when set (tests), is called with each unit whose
// prefetched gather is used.
var prefetchHook func(unit int)

package train

import (
	"fmt"
	"math"
	"os"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ZeRO-style sharding of the optimizer over a data-parallel group
// (TrainerConfig.ZeroStage).
//
// The trainable parameters, in Params' order, are laid end to end in one
// virtual flat index space of N elements, split into world-size contiguous
// shards of ceil(N/world) elements; rank r owns [r·S, (r+1)·S). A shard is
// a list of pieces, each a contiguous run of one parameter's flattened
// elements. No flat copy of the parameters is ever made: a piece is a view
// into its parameter.
//
// Stage 1: each rank keeps AdamW's moments (and the fp32 master copy of a
// low-precision parameter) for its pieces only, updates its pieces from the
// all-reduced gradient, and the updated pieces are all-gathered.
//
// Stage 2: as stage 1, but after the gradient reduction each rank keeps only
// its shard's gradient (fp32), drops the full one, and computes the
// clipping norm from the shards (one scalar all-reduce).
//
// c10d's Gloo in libtorch 1.13 has no reduce-scatter for CPU tensors and
// pltune's c10d shim exposes all-reduce and broadcast only, so here the
// collectives are built from those: the reduce-scatter is an all-reduce of
// the whole gradient (twice a ring reduce-scatter's traffic) of which each
// rank keeps its slice, and the all-gather is one broadcast per rank of
// that rank's pieces, written straight into the parameters.
type zeroOptimizer struct {
	cfg     AdamWConfig
	stage   int
	comm    Communicator
	rank    int
	world   int
	params  []Param
	total   int64
	shard   int64
	pieces  [][]zeroPiece // per rank
	m, v    []*ts.Tensor  // per own piece, fp32
	master  []*ts.Tensor  // per own piece: fp32 copy of a low-precision parameter's piece; nil otherwise
	offload bool          // optimizer state on the CPU whatever the parameters' device
	steps   int
	pSteps  []int

	// Stage 3 (zero3.go).
	model      *Model
	unitOf     []int        // per parameter
	unitParams [][]int      // per unit+1: its parameters
	shape      [][]int64    // per parameter
	wshard     []*ts.Tensor // per own piece: its weights, in the parameter's dtype and device
	gacc       []*ts.Tensor // per own piece: the step's fp32 gradient sum; nil before any
	has        []bool       // per parameter: a gradient arrived this step
	gathered   []bool       // per parameter: whole now
	exportFrom string       // folder of shard files the final export reads
	// embedP, headP: the embedding and LM head, sharded by vocabulary
	// (zero_vocab.go), -1 when not; vocabRows: the head's chunk rows.
	embedP, headP int
	vocabRows     int64
	preload       *zeroPreload  // LoadModelSharded's pieces, taken by setupStage3
	raw           Communicator  // stage 3 prefetching: comm without the wait (zero_prefetch.go)
	pending       *unitPrefetch // the prefetch in flight
	// perLayer: gradients are reduced unit by unit inside the backward
	// pass into gacc (stage 3; stage 2 when the model checkpoints).
	perLayer bool
}

// zeroPiece is a run of a parameter's flattened elements inside one shard.
type zeroPiece struct {
	param int   // index into params
	start int64 // first element, in the parameter's flattening
	n     int64 // elements
}

// ZeroStageError reports an unusable TrainerConfig.ZeroStage.
func checkZeroStage(stage int) error {
	if stage < 0 || stage > 3 {
		return fmt.Errorf("train: ZeroStage %d: want 0 (plain data parallel), 1, 2 or 3", stage)
	}
	return nil
}

// zeroPartition splits sizes (elements per parameter) into world contiguous
// shards of the flat index space; it returns each rank's pieces and the
// shard size.
func zeroPartition(sizes []int64, world int) ([][]zeroPiece, int64, int64) {
	var total int64
	for _, s := range sizes {
		total += s
	}
	shard := (total + int64(world) - 1) / int64(world)
	pieces := make([][]zeroPiece, world)
	var off int64 // flat offset of parameter i
	for i, s := range sizes {
		for a := int64(0); a < s; {
			r := int((off + a) / shard)
			end := min(int64(r+1)*shard-off, s)
			pieces[r] = append(pieces[r], zeroPiece{param: i, start: a, n: end - a})
			a = end
		}
		off += s
	}
	return pieces, shard, total
}

func newZeroOptimizer(params []Param, cfg AdamWConfig, stage int, comm Communicator, offload bool, model *Model) (*zeroOptimizer, error) {
	if err := checkZeroStage(stage); err != nil {
		return nil, err
	}
	z := &zeroOptimizer{cfg: cfg, stage: stage, comm: comm, world: 1, offload: offload, embedP: -1, headP: -1}
	if comm != nil {
		z.rank, z.world = comm.Rank(), comm.Size()
	}
	pl := preloaded(model) // LoadModelSharded's pieces (zero_load.go)
	if pl != nil && stage != 3 {
		return nil, z.checkPreload(pl, model)
	}
	var sizes []int64
	for _, p := range params {
		if !p.Trainable {
			continue
		}
		if !p.T.MustIsContiguous() {
			return nil, fmt.Errorf("train: ZeRO: parameter %s is not contiguous", p.Name)
		}
		z.params = append(z.params, p)
		n := int64(p.T.Numel())
		if s, ok := pl.wholeShape(p.Name); ok {
			n = numel(s)
		}
		sizes = append(sizes, n)
	}
	if len(z.params) == 0 {
		return nil, fmt.Errorf("adamw: no trainable parameters")
	}
	z.pSteps = make([]int, len(z.params))
	z.pieces, z.shard, z.total = zeroPartition(sizes, z.world)
	if stage == 3 {
		z.pieces = zeroPartitionPerParam(sizes, z.world)
		if err := z.checkStage3(model); err != nil {
			return nil, err
		}
		if pl != nil {
			// Every rank loaded its pieces of the same folder.
			if err := z.checkPreload(pl, model); err != nil {
				return nil, err
			}
		} else if z.world > 1 {
			// Every rank starts from rank 0's weights; the pieces and
			// masters below are cut from them.
			all := make([]*ts.Tensor, len(z.params))
			for i, p := range z.params {
				all[i] = p.T
			}
			var err error
			torchx.NoGrad(func() { err = comm.Broadcast(all, 0) })
			if err != nil {
				return nil, fmt.Errorf("train: broadcasting initial weights: %w", err)
			}
		}
	}
	torchx.NoGrad(func() {
		for _, pc := range z.pieces[z.rank] {
			p := z.params[pc.param]
			dev := z.stateDevice(p)
			m := ts.MustZeros([]int64{pc.n}, gotch.Float, dev)
			z.m = append(z.m, m)
			z.v = append(z.v, m.MustZerosLike(false))
			var master *ts.Tensor
			if p.T.DType() != gotch.Float || z.offload {
				// The fp32 master of a low-precision parameter; with
				// offload, the fp32 weights the CPU updates.
				var w *ts.Tensor
				if pl != nil {
					w = pl.pieceView(p.Name)
				} else {
					w = z.view(pc)
				}
				master = w.MustDetach(false).MustTotype(gotch.Float, true).MustTo(dev, true)
			}
			z.master = append(z.master, master)
		}
	})
	switch {
	case stage == 3:
		z.setupStage3(model)
	case stage == 2 && model != nil && model.GradientCheckpointing() && model.units == nil:
		// Gradients reduced and freed layer by layer in the backward pass.
		z.setupUnits(model)
	}
	return z, nil
}

// refreshMasters copies the parameters into the fp32 masters (after the
// initial broadcast replaced the parameters).
func (z *zeroOptimizer) refreshMasters() {
	if z.stage == 3 {
		return // cut from the broadcast weights already
	}
	torchx.NoGrad(func() {
		for k, pc := range z.pieces[z.rank] {
			if z.master[k] != nil {
				v := z.view(pc)
				z.master[k].Copy_(v)
				v.MustDrop()
			}
		}
	})
}

func (z *zeroOptimizer) stateDevice(p Param) gotch.Device {
	if z.offload {
		return gotch.CPU
	}
	return p.T.MustDevice()
}

// view is piece pc of its parameter: a view sharing its storage.
func (z *zeroOptimizer) view(pc zeroPiece) *ts.Tensor {
	return z.params[pc.param].T.MustView([]int64{-1}, false).MustNarrow(0, pc.start, pc.n, true)
}

// Params are the trainable parameters, in the order of the flat space.
func (z *zeroOptimizer) Params() []Param { return z.params }

// Steps is the number of optimizer steps taken.
func (z *zeroOptimizer) Steps() int { return z.steps }

// ZeroGrad clears the parameters' gradients.
func (z *zeroOptimizer) ZeroGrad() {
	for _, p := range z.params {
		zeroGrad(p.T)
	}
}

// StepGrads is stage 1's update from full, already reduced gradients (one
// per parameter, nil where no rank had one): each rank updates its pieces,
// then the pieces are all-gathered.
func (z *zeroOptimizer) StepGrads(lr float64, grads []*ts.Tensor) error {
	if len(grads) != len(z.params) {
		return fmt.Errorf("adamw: %d gradients for %d parameters", len(grads), len(z.params))
	}
	shard := make([]*ts.Tensor, len(z.pieces[z.rank]))
	torchx.NoGrad(func() {
		for k, pc := range z.pieces[z.rank] {
			if g := grads[pc.param]; g != nil {
				shard[k] = g.MustView([]int64{-1}, false).MustNarrow(0, pc.start, pc.n, true)
			}
		}
	})
	defer dropAll(shard)
	has := make([]bool, len(z.params))
	for i, g := range grads {
		has[i] = g != nil
	}
	return z.stepShard(lr, shard, has)
}

// stepShard updates this rank's pieces from their gradients (nil: the
// parameter got none this step) and all-gathers the result; has says which
// parameters got a gradient on any rank (their step counts advance).
func (z *zeroOptimizer) stepShard(lr float64, shard []*ts.Tensor, has []bool) error {
	z.steps++
	for i, h := range has {
		if h {
			z.pSteps[i]++
		}
	}
	torchx.NoGrad(func() {
		for k, pc := range z.pieces[z.rank] {
			g := shard[k]
			if g == nil || !has[pc.param] {
				continue
			}
			p := z.params[pc.param]
			dev := z.stateDevice(p)
			if g.DType() != gotch.Float || !sameDevice(g.MustDevice(), dev) {
				g = g.MustTotype(gotch.Float, false).MustTo(dev, true)
			} else {
				g = g.MustShallowClone()
			}
			w := z.master[k]
			var view *ts.Tensor
			if z.stage == 3 {
				view = z.wshard[k].MustShallowClone()
			} else {
				view = z.view(pc)
			}
			if w == nil {
				w = view
			}
			adamwUpdate(z.cfg, w, z.m[k], z.v[k], g, lr, z.pSteps[pc.param], p.NoDecay)
			g.MustDrop()
			if z.master[k] != nil {
				view.Copy_(z.master[k])
			}
			view.MustDrop()
		}
	})
	if z.stage == 3 {
		return nil // gathered unit by unit when next used
	}
	return z.allGather()
}

// allGather gives every rank every rank's updated pieces: one broadcast per
// rank, straight into the parameters' storage.
func (z *zeroOptimizer) allGather() error {
	if z.world == 1 {
		return nil
	}
	var err error
	torchx.NoGrad(func() {
		for r := range z.world {
			views := make([]*ts.Tensor, len(z.pieces[r]))
			for k, pc := range z.pieces[r] {
				views[k] = z.view(pc)
			}
			err = z.comm.Broadcast(views, r)
			dropAll(views)
			if err != nil {
				err = fmt.Errorf("train: ZeRO all-gather of rank %d's parameter shard: %w", r, err)
				return
			}
		}
	})
	return err
}

// reduceScatterStep is stage 2's step from the step's local gradients (one
// per parameter, nil where this rank's micro-batches did not reach it):
// gradients are summed over ranks, each rank keeps its shard's part in
// fp32 and frees the rest, the norm over all shards is clipped to maxNorm,
// and the shard is updated and all-gathered. It returns the norm before
// clipping.
func (z *zeroOptimizer) reduceScatterStep(t *Trainer, lr, maxNorm float64, grads []*ts.Tensor) (float64, error) {
	if z.world > 1 {
		// Built from all-reduce: see the type's comment.
		if err := t.reduceGrads(z.params, grads); err != nil {
			dropAll(grads)
			return 0, err
		}
	}
	has := make([]bool, len(z.params))
	for i, g := range grads {
		has[i] = g != nil
	}
	shard := make([]*ts.Tensor, len(z.pieces[z.rank]))
	torchx.NoGrad(func() {
		for k, pc := range z.pieces[z.rank] {
			if g := grads[pc.param]; g != nil {
				v := g.MustView([]int64{-1}, false).MustNarrow(0, pc.start, pc.n, true)
				if v.DType() == gotch.Float {
					// Own a copy, so the full gradient can go.
					c := v.MustZerosLike(false)
					c.Copy_(v)
					v.MustDrop()
					shard[k] = c
				} else {
					shard[k] = v.MustTotype(gotch.Float, true)
				}
			}
		}
		// The full gradients are freed (an fp32 parameter's .grad is only
		// zeroed: libtorch keeps it allocated for the next backward).
		dropAll(grads)
		for i := range grads {
			grads[i] = nil
		}
		z.ZeroGrad()
	})
	defer dropAll(shard)
	norm, err := z.clipShard(t, shard, maxNorm)
	if err != nil {
		return norm, err
	}
	return norm, z.stepShard(lr, shard, has)
}

// clipShard scales the shard's gradients (nil entries skipped) so that the
// norm over all ranks' shards is at most maxNorm (when positive) and
// returns the norm before clipping; ErrNonFinite when it is not finite.
func (z *zeroOptimizer) clipShard(t *Trainer, shard []*ts.Tensor, maxNorm float64) (float64, error) {
	var norm float64
	var err error
	torchx.NoGrad(func() {
		sq := 0.0
		for _, g := range shard {
			if g != nil {
				n := torchx.Float64s(g.MustNorm(false), true)[0]
				sq += n * n
			}
		}
		var tot []float64
		if tot, err = t.allReduce([]float64{sq}); err != nil {
			return
		}
		norm = math.Sqrt(tot[0])
		if maxNorm > 0 && norm > maxNorm && !math.IsInf(norm, 0) {
			coef := maxNorm / (norm + 1e-6)
			for _, g := range shard {
				if g != nil {
					g.MustMulScalar_(ts.FloatScalar(coef))
				}
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("gradient norm is %v: %w", norm, ErrNonFinite)
	}
	return norm, nil
}

// StateBytes is a rank's training state, in bytes, at its peak within a
// step: the parameters, their gradients (with the fp32 step sums of
// low-precision parameters' gradients) and the optimizer state (AdamW's
// moments and fp32 master weights).
type StateBytes struct {
	Weights, Grads, Optimizer int64
}

// Total is the sum of the three.
func (b StateBytes) Total() int64 { return b.Weights + b.Grads + b.Optimizer }

// ShardedStateBytes is the StateBytes of rank of a world-rank group
// training params (Model.NamedParameters, whole) with ZeRO stage (0: plain
// data parallel), as this package allocates them; checkpointing tells
// whether the model uses activation checkpointing. Stages 0 and 1, and
// stage 2 without checkpointing, count gradients whole: libtorch's
// autograd accumulates every parameter's gradient during the backward
// pass, and stage 2 without checkpointing shards them only after it.
// Stage 2 with checkpointing and stage 3 reduce and free them unit by unit
// (embedding, decoder layer, head): they count the rank's fp32 gradient
// pieces plus the largest unit's gradients whole (with fp32 copies of
// low-precision ones for the reduction); stage 3 also counts the rank's
// weight pieces plus the largest unit's weights whole. Under stage 3 the
// embedding and LM head are never whole (zero_vocab.go): the units are the
// decoder layers, the final norm and a head chunk (its weights and fp32
// gradient), plus, with more than one rank, the largest unit's weights
// again for the prefetch of the next unit (zero_prefetch.go); the step's
// used embedding rows (a [rows, hidden] table, at most the micro-batch's
// token count) are not counted.
func ShardedStateBytes(params []Param, stage, world, rank int, checkpointing bool) StateBytes {
	var b StateBytes
	var sizes []int64
	var trainable []Param
	for _, p := range params {
		n := int64(p.T.Numel())
		if !p.Trainable {
			b.Weights += n * int64(p.T.DType().Size())
			continue
		}
		trainable = append(trainable, p)
		sizes = append(sizes, n)
	}
	perLayer := stage == 3 || stage == 2 && checkpointing
	for i, p := range trainable {
		n, es := sizes[i], int64(p.T.DType().Size())
		if stage < 3 || world <= 1 {
			b.Weights += n * es
		}
		if !perLayer || world <= 1 {
			b.Grads += n * es
			if es != 4 {
				b.Grads += 4 * n // the fp32 step sum
			}
		}
	}
	if stage == 0 || world <= 1 {
		for i, p := range trainable {
			b.Optimizer += 8 * sizes[i]
			if p.T.DType() != gotch.Float {
				b.Optimizer += 4 * sizes[i]
			}
		}
		return b
	}
	var pieces [][]zeroPiece
	if stage < 3 {
		pieces, _, _ = zeroPartition(sizes, world)
	} else {
		pieces = zeroPartitionPerParam(sizes, world)
	}
	for _, pc := range pieces[rank] {
		p := trainable[pc.param]
		b.Optimizer += 8 * pc.n
		if p.T.DType() != gotch.Float {
			b.Optimizer += 4 * pc.n
		}
		if stage == 3 {
			b.Weights += pc.n * int64(p.T.DType().Size())
		}
		if perLayer {
			b.Grads += 4 * pc.n // the fp32 gradient sum
		}
	}
	if perLayer {
		layers := 0
		for _, p := range trainable {
			if u := paramUnit(p.Name, 1<<30); u >= 0 && u < 1<<30 {
				layers = max(layers, u+1)
			}
		}
		unitW, unitG, unitN := map[int]int64{}, map[int]int64{}, map[int]int64{}
		var vocab *Param // stage 3's head, walked in chunks
		for i, p := range trainable {
			if stage == 3 && (p.Name == "model.embed_tokens.weight" || p.Name == "lm_head.weight") {
				if p.Name == "lm_head.weight" {
					vocab = &trainable[i]
				}
				continue // never whole (zero_vocab.go)
			}
			u := paramUnit(p.Name, layers)
			es := int64(p.T.DType().Size())
			unitW[u] += sizes[i] * es
			unitN[u] += sizes[i]
			unitG[u] += sizes[i] * es
			if es != 4 {
				unitG[u] += 4 * sizes[i]
			}
		}
		var mw, mg, largest, prefetched int64
		for u := range unitW {
			largest = max(largest, unitN[u])
			prefetched = max(prefetched, unitW[u])
			if unitW[u]+unitG[u] > mw+mg {
				mw, mg = unitW[u], unitG[u]
			}
		}
		if vocab != nil {
			// A head chunk: its weights and fp32 weight gradient.
			s := vocab.T.MustSize()
			n := vocabChunkRows(s[0], s[1], largest) * s[1]
			if cw, cg := n*int64(vocab.T.DType().Size()), 4*n; cw+cg > mw+mg {
				mw, mg = cw, cg
			}
		}
		if stage == 3 {
			b.Weights += mw
			if world > 1 && os.Getenv("PLTUNE_ZERO3_PREFETCH") != "off" {
				b.Weights += prefetched // the next unit, gathered meanwhile
			}
		}
		b.Grads += mg
	}
	return b
}

package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ZeRO stage 3: parameters sharded per unit of the model: the embedding,
// each decoder layer, and the head (final norm and LM head). Every
// trainable parameter is split into world-size contiguous pieces of its
// flattening, rank r keeping piece r (its weights, moments, fp32 master and
// gradient sum). Outside a unit's compute the parameter tensor holds no
// storage (set_() to an empty one); gatherUnit allocates it whole, fills it
// with one broadcast per rank of that rank's pieces, and releaseUnit frees
// it again, after a backward first summing the unit's gradients over the
// ranks (an all-reduce, as in stage 2: no reduce-scatter here) into each
// rank's fp32 piece sums and freeing the gradients too. The embedding and
// LM head matrices are not gathered whole at all (zero_vocab.go: the used
// rows, and head chunks), and the next unit is gathered while one
// computes (zero_prefetch.go). So a rank holds whole one layer's weights
// and gradients at a time, and the next layer's weights, beside its
// 1/world of everything else.
//
// The model stays sharded when Run returns. The final export (final/)
// streams it: rank 0 writes the Hugging Face (or PEFT) files one
// parameter at a time, each assembled from the ranks' shard files of the
// final checkpoint, so no rank ever holds the whole model; the ranks must
// share OutDir's file system, as for resuming. ConsolidateZeroCheckpoint
// does the same from any checkpoint, without a model (zero_consolidate.go).
//
// The hook points are the layer loop of a checkpointed pass (recompute.go),
// so stage 3 needs activation checkpointing. Frozen parameters (the base
// under LoRA) are not sharded: every rank keeps them whole.

// Units of a model besides its decoder layers 0…L-1.
const embedUnit = -1

func (m *Model) headUnit() int { return len(m.net.Layers) }

// unitGatherer gathers and frees a unit's sharded parameters.
type unitGatherer interface {
	gather(unit int, backward bool) error
	release(unit int, backward bool) error
}

func (m *Model) gatherUnit(unit int, backward bool) error {
	if m.units == nil {
		return nil
	}
	return m.units.gather(unit, backward)
}

func (m *Model) releaseUnit(unit int, backward bool) error {
	if m.units == nil {
		return nil
	}
	return m.units.release(unit, backward)
}

// paramUnit is the unit of a parameter named as Model.NamedParameters
// names it.
func paramUnit(name string, layers int) int {
	if strings.HasPrefix(name, "model.embed_tokens.") {
		return embedUnit
	}
	if rest, ok := strings.CutPrefix(name, "model.layers."); ok {
		if i := strings.IndexByte(rest, '.'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil && n >= 0 && n < layers {
				return n
			}
		}
	}
	return layers
}

// zeroPartitionPerParam splits every parameter into world contiguous
// pieces; rank r gets piece r of each (none where the parameter is too
// small to have one).
func zeroPartitionPerParam(sizes []int64, world int) [][]zeroPiece {
	pieces := make([][]zeroPiece, world)
	for i, n := range sizes {
		chunk := (n + int64(world) - 1) / int64(world)
		for r := range world {
			a := int64(r) * chunk
			if a >= n {
				break
			}
			pieces[r] = append(pieces[r], zeroPiece{param: i, start: a, n: min(chunk, n-a)})
		}
	}
	return pieces
}

// checkStage3 tells whether model can be trained with stage 3.
func (z *zeroOptimizer) checkStage3(m *Model) error {
	switch {
	case m == nil:
		return fmt.Errorf("train: ZeroStage 3 needs TrainerConfig.Model, the model whose layers are gathered one at a time")
	case !m.GradientCheckpointing():
		return fmt.Errorf("train: ZeroStage 3 gathers each layer's weights in the layer loop of activation checkpointing: turn it on (ModelOptions.GradientCheckpointing, --gradient-checkpointing)")
	case m.Config.TieWordEmbeddings:
		return fmt.Errorf("train: ZeroStage 3 does not support tied input and output embeddings")
	case m.units != nil && preloaded(m) == nil:
		return fmt.Errorf("train: the model is already sharded by another run")
	}
	return nil
}

// setupStage3 shards the parameters of m (whole and equal on every rank):
// each rank keeps its pieces and the whole tensors are freed; m's
// checkpointed passes then call z around each unit.
func (z *zeroOptimizer) setupStage3(m *Model) {
	z.setupUnits(m)
	z.setupPrefetch()
	clear(z.gathered)
	// The embedding and LM head are never gathered whole (zero_vocab.go).
	z.embedP, z.headP = z.vocabParams()
	var largest int64
	for u, idx := range z.unitParams {
		idx = slices.DeleteFunc(idx, func(i int) bool { return i == z.embedP || i == z.headP })
		z.unitParams[u] = idx
		var n int64
		for _, i := range idx {
			n += int64(z.params[i].T.Numel())
		}
		largest = max(largest, n)
	}
	if z.headP >= 0 {
		z.vocabRows = vocabChunkRows(z.shape[z.headP][0], z.shape[z.headP][1], largest)
	}
	torchx.NoGrad(func() {
		for _, pc := range z.pieces[z.rank] {
			if z.preload != nil {
				z.wshard = append(z.wshard, z.preload.takePiece(z.params[pc.param].Name))
				continue
			}
			v := z.view(pc)
			w := v.MustZerosLike(false)
			w.Copy_(v)
			v.MustDrop()
			z.wshard = append(z.wshard, w)
		}
		for _, p := range z.params {
			zeroGrad(p.T) // gotch's Tensor.ZeroGrad leaks a tensor per call
			p.T.MustSet_()
		}
	})
}

// setupUnits maps the parameters to m's units and hooks z into m's
// checkpointed passes; the parameters stay whole (stage 2 reducing
// gradients layer by layer; setupStage3 then shards them).
func (z *zeroOptimizer) setupUnits(m *Model) {
	z.model = m
	z.preload = preloaded(m)
	z.perLayer = true
	z.unitOf = make([]int, len(z.params))
	z.unitParams = make([][]int, len(m.net.Layers)+2)
	z.shape = make([][]int64, len(z.params))
	for i, p := range z.params {
		u := paramUnit(p.Name, len(m.net.Layers))
		z.unitOf[i] = u
		z.unitParams[u+1] = append(z.unitParams[u+1], i)
		z.shape[i] = p.T.MustSize()
		if s, ok := z.preload.wholeShape(p.Name); ok {
			z.shape[i] = s
		}
	}
	z.gacc = make([]*ts.Tensor, len(z.pieces[z.rank]))
	z.has = make([]bool, len(z.params))
	z.gathered = make([]bool, len(z.params))
	for i := range z.gathered {
		z.gathered[i] = true
	}
	m.units = z
}

// gather makes the unit's parameters whole: each rank broadcasts its
// pieces into every rank's freshly allocated tensors (or the prefetch of
// this unit did, while the previous one computed). Before a backward, a
// gradient freed by the last release is made a zero tensor of the
// parameter's shape again, for autograd to accumulate into. It then starts
// the prefetch of the unit the pass gathers next (zero_prefetch.go).
func (z *zeroOptimizer) gather(unit int, backward bool) error {
	idx := z.unitParams[unit+1]
	if len(idx) == 0 {
		return nil
	}
	full, err := z.takePrefetch(unit)
	if full == nil && err == nil {
		full, err = z.fetchUnit(unit, z.comm)
	}
	torchx.NoGrad(func() {
		for i, f := range full {
			if err == nil {
				z.params[i].T.MustSetSourceTensor_(f)
				z.gathered[i] = true
			}
			f.MustDrop()
		}
		if err != nil || !backward {
			return
		}
		for _, i := range idx {
			g := z.params[i].T.MustGrad(false)
			if g.MustDefined() && g.Numel() == 0 {
				zero := ts.MustZeros(z.shape[i], g.DType(), g.MustDevice())
				g.MustSetSourceTensor_(zero)
				zero.MustDrop()
			}
			g.MustDrop()
		}
	})
	if err == nil {
		z.startPrefetch(z.nextUnit(unit, backward))
	}
	return err
}

// fetchUnit allocates the unit's parameters that are not whole and fills
// them with one broadcast per rank of that rank's pieces over comm.
func (z *zeroOptimizer) fetchUnit(unit int, comm Communicator) (map[int]*ts.Tensor, error) {
	full := z.allocUnit(unit)
	return full, z.fillUnit(unit, full, comm)
}

// allocUnit allocates the unit's parameters that are not whole.
func (z *zeroOptimizer) allocUnit(unit int) map[int]*ts.Tensor {
	full := map[int]*ts.Tensor{}
	for _, i := range z.unitParams[unit+1] {
		if z.gathered[i] {
			continue
		}
		p := z.params[i]
		full[i] = ts.MustZeros(z.shape[i], p.T.DType(), p.T.MustDevice())
	}
	return full
}

// fillUnit fills full (allocUnit's) with one broadcast per rank of that
// rank's pieces over comm; on error it frees them.
func (z *zeroOptimizer) fillUnit(unit int, full map[int]*ts.Tensor, comm Communicator) error {
	var err error
	torchx.NoGrad(func() {
		for r := range z.world {
			if len(full) == 0 {
				break
			}
			var views []*ts.Tensor
			for k, pc := range z.pieces[r] {
				f := full[pc.param]
				if f == nil {
					continue
				}
				v := f.MustView([]int64{-1}, false).MustNarrow(0, pc.start, pc.n, true)
				if r == z.rank {
					v.Copy_(z.wshard[k])
				}
				views = append(views, v)
			}
			if z.world > 1 && len(views) > 0 {
				err = comm.Broadcast(views, r)
			}
			dropAll(views)
			if err != nil {
				err = fmt.Errorf("train: ZeRO-3 gathering %s from rank %d: %w", z.unitName(unit), r, err)
				break
			}
		}
	})
	if err != nil {
		for _, f := range full {
			f.MustDrop()
		}
		clear(full)
	}
	return err
}

// release frees the unit's whole parameters; after a backward it first
// sums their gradients over the ranks and adds this rank's pieces of the
// sum to its fp32 gradient sums, then frees the gradients too.
func (z *zeroOptimizer) release(unit int, backward bool) error {
	idx := z.unitParams[unit+1]
	if len(idx) == 0 {
		return nil
	}
	var err error
	torchx.NoGrad(func() {
		if backward {
			err = z.reduceUnit(idx)
		}
		for _, i := range idx {
			p := z.params[i].T
			if backward {
				g := p.MustGrad(false)
				if g.MustDefined() {
					g.MustSet_()
				}
				g.MustDrop()
			}
			if z.stage == 3 {
				p.MustSet_()
				z.gathered[i] = false
			}
		}
	})
	return err
}

// reduceUnit sums the gradients of parameters idx over the ranks (zeros
// from a rank that has none, with a flag per parameter telling whether any
// rank had one) and adds this rank's pieces into its fp32 sums.
func (z *zeroOptimizer) reduceUnit(idx []int) error {
	send := make([]*ts.Tensor, 0, len(idx)+1)
	flags := make([]float32, len(idx))
	var dev gotch.Device
	for j, i := range idx {
		p := z.params[i].T
		dev = p.MustDevice()
		g := p.MustGrad(false)
		if g.MustDefined() && g.Numel() > 0 {
			flags[j] = 1
			if g.DType() != gotch.Float {
				g = g.MustTotype(gotch.Float, true)
			}
		} else {
			g.MustDrop()
			g = ts.MustZeros(z.shape[i], gotch.Float, dev)
		}
		send = append(send, g)
	}
	f := ts.MustOfSlice(flags)
	if !sameDevice(dev, gotch.CPU) {
		f = f.MustTo(dev, true)
	}
	send = append(send, f)
	defer dropAll(send)
	if z.world > 1 {
		if err := z.comm.AllReduceSum(send); err != nil {
			return fmt.Errorf("train: ZeRO gradient reduction of %s: %w", z.unitName(z.unitOf[idx[0]]), err)
		}
	}
	got := torchx.Float64s(f, false)
	pos := map[int]int{}
	for j, i := range idx {
		pos[i] = j
	}
	for k, pc := range z.pieces[z.rank] {
		j, ok := pos[pc.param]
		if !ok || got[j] == 0 {
			continue
		}
		z.has[pc.param] = true
		v := send[j].MustView([]int64{-1}, false).MustNarrow(0, pc.start, pc.n, true)
		dst := z.stateDevice(z.params[pc.param])
		if z.gacc[k] == nil {
			z.gacc[k] = ts.MustZeros([]int64{pc.n}, gotch.Float, dst)
		}
		if !sameDevice(dst, dev) {
			v = v.MustTo(dst, true)
		}
		z.gacc[k].MustAdd_(v)
		v.MustDrop()
	}
	for j, i := range idx {
		if got[j] != 0 {
			z.has[i] = true
		}
	}
	return nil
}

// stepFromSums is the optimizer step of stage 3 (and of stage 2 reducing
// layer by layer) from the gradient sums the backward passes left: clip by
// the norm over all shards, update this rank's pieces (stage 2: and
// all-gather them). It returns the norm before clipping.
func (z *zeroOptimizer) stepFromSums(t *Trainer, lr, maxNorm float64) (float64, error) {
	defer func() {
		for k := range z.gacc {
			if z.gacc[k] != nil {
				z.gacc[k].MustDrop()
				z.gacc[k] = nil
			}
		}
		clear(z.has)
	}()
	norm, err := z.clipShard(t, z.gacc, maxNorm)
	if err != nil {
		return norm, err
	}
	return norm, z.stepShard(lr, z.gacc, z.has)
}

// whole is parameter t's whole value for saving (fp32, on the CPU),
// assembled from the ranks' shard files in the folder z.exportFrom one
// piece at a time; nil when t is not a sharded parameter or is whole now.
func (z *zeroOptimizer) whole(t *ts.Tensor) (*ts.Tensor, error) {
	i := slices.IndexFunc(z.params, func(p Param) bool { return p.T == t })
	if i < 0 || z.gathered[i] {
		return nil, nil
	}
	if z.exportFrom == "" {
		return nil, fmt.Errorf("train: %s is sharded (ZeRO stage 3) and only the final export may save it", z.params[i].Name)
	}
	var n int64 = 1
	for _, d := range z.shape[i] {
		n *= d
	}
	vals := make([]float32, 0, n)
	for r := range z.world {
		for _, pc := range z.pieces[r] {
			if pc.param != i {
				continue
			}
			f, err := safetensors.OpenFile(filepath.Join(z.exportFrom, zeroShardFile(r, z.world)))
			if err != nil {
				return nil, err
			}
			v, err := f.ReadFloat32(zeroPieceName("weight", z.params[i].Name, pc))
			f.Close()
			if err != nil {
				return nil, err
			}
			vals = append(vals, v...)
		}
	}
	if int64(len(vals)) != n {
		return nil, fmt.Errorf("train: %s: the shards hold %d of its %d elements", z.params[i].Name, len(vals), n)
	}
	return ts.MustOfSlice(vals).MustView(z.shape[i], true), nil
}

// wholeShape is parameter t's shape, also while it is sharded.
func (z *zeroOptimizer) wholeShape(t *ts.Tensor) []int64 {
	if i := slices.IndexFunc(z.params, func(p Param) bool { return p.T == t }); i >= 0 {
		return z.shape[i]
	}
	return nil
}

// saveBytes is tensorBytes of t, or of its whole value assembled from the
// shard files when t is a parameter sharded by ZeRO stage 3: the export
// streams the model one parameter at a time.
func (m *Model) saveBytes(t *ts.Tensor, kind gotch.DType) ([]byte, error) {
	if z, ok := m.units.(*zeroOptimizer); ok {
		w, err := z.whole(t)
		if err != nil {
			return nil, err
		}
		if w != nil {
			defer w.MustDrop()
			return tensorBytes(w, kind)
		}
	}
	return tensorBytes(t, kind)
}

// saveShape is t's shape, its whole one while ZeRO stage 3 shards it.
func (m *Model) saveShape(t *ts.Tensor) []int64 {
	if z, ok := m.units.(*zeroOptimizer); ok {
		if s := z.wholeShape(t); s != nil {
			return s
		}
	}
	return t.MustSize()
}

// prepareExport, under stage 3, points the export at shard files holding
// the current weights: the final checkpoint's, or (without one) a staging
// folder every rank writes its shard into. It returns the staging folder
// to remove after the export ("" when none).
func (t *Trainer) prepareExport(opt optimizer, step int) (string, error) {
	z, ok := opt.(*zeroOptimizer)
	if !ok || z.stage != 3 || t.cfg.Export == nil {
		return "", nil
	}
	if !t.cfg.NoFinalCheckpoint {
		z.exportFrom = filepath.Join(t.cfg.OutDir, checkpointPrefix+strconv.Itoa(step))
		return "", nil
	}
	dir := filepath.Join(t.cfg.OutDir, ".zero-export")
	if t.rank() == 0 {
		os.RemoveAll(dir)
	}
	if _, err := t.allReduce([]float64{0}); err != nil {
		return "", err
	}
	werr := os.MkdirAll(dir, 0o755)
	if werr == nil {
		werr = z.writeShard(filepath.Join(dir, zeroShardFile(t.rank(), t.world())))
	}
	failed := 0.0
	if werr != nil {
		failed = 1
	}
	agree, err := t.allReduce([]float64{failed})
	if err != nil {
		return "", err
	}
	if werr != nil || agree[0] > 0 {
		return "", fmt.Errorf("train: writing the shards for the final export: %v", errors.Join(werr, errors.New("a rank failed")))
	}
	z.exportFrom = dir
	return dir, nil
}

func isStage3(opt optimizer) bool {
	z, ok := opt.(*zeroOptimizer)
	return ok && z.stage == 3
}

// stepGradParams are the parameters whose gradients the trainer collects
// after each micro-batch: none when ZeRO reduces and frees them layer by
// layer inside the backward pass (stage 3, stage 2 with checkpointing).
func stepGradParams(opt optimizer) []Param {
	if z, ok := opt.(*zeroOptimizer); ok && z.perLayer {
		return nil
	}
	return opt.Params()
}

// refreshMasters copies the parameters into the optimizer's fp32 master
// weights after the initial broadcast replaced the parameters.
func refreshMasters(opt optimizer) {
	switch o := opt.(type) {
	case *zeroOptimizer:
		o.refreshMasters()
	case *AdamW:
		torchx.NoGrad(func() {
			for i, p := range o.params {
				if o.master[i] != nil {
					o.master[i].Copy_(p.T)
				}
			}
		})
	}
}

// detachUnits unhooks a stage-2 optimizer from the model when the run
// ends (a stage-3 model stays sharded, hooked to its optimizer).
func detachUnits(opt optimizer) {
	if z, ok := opt.(*zeroOptimizer); ok && z.stage == 2 && z.perLayer && z.model.units == z {
		z.model.units = nil
	}
}

// unitName names a unit in messages.
func (z *zeroOptimizer) unitName(u int) string {
	switch {
	case u == embedUnit:
		return "the embedding"
	case z.model != nil && u == z.model.headUnit():
		return "the head (final norm, LM head)"
	}
	return fmt.Sprintf("decoder layer %d", u)
}

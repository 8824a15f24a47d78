package train

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Sharded loading for ZeRO stage 3: each rank reads from the Hugging Face
// folder only the piece of every tensor stage 3 gives it (a byte range of
// the file, safetensors.File.ReadRange), so no rank ever holds the whole
// model, also not while loading. The model's parameters hold no storage
// until the stage-3 trainer gathers them; its optimizer takes the pieces.

// zeroPreload is a model loaded by LoadModelSharded, waiting for its
// stage-3 optimizer; as the model's unit gatherer it refuses to run.
type zeroPreload struct {
	rank, world int
	shape       map[string][]int64    // per parameter: its whole shape
	piece       map[string]*ts.Tensor // per parameter: this rank's piece (flat)
}

func (p *zeroPreload) gather(int, bool) error {
	return fmt.Errorf("train: the model was loaded sharded (LoadModelSharded): only a ZeroStage 3 trainer with the same world size can run it")
}

func (p *zeroPreload) release(int, bool) error { return nil }

func (p *zeroPreload) drop() {
	for _, t := range p.piece {
		t.MustDrop()
	}
	clear(p.piece)
}

// LoadModelSharded loads the Hugging Face folder dir as LoadModel does, but
// for full fine-tuning under ZeroStage 3 as rank of world ranks: of each
// tensor it reads only this rank's piece (its 1/world of the elements).
// The model is usable only by a stage-3 Trainer of the same group (and
// activation checkpointing on), which then starts from these pieces
// without broadcasting rank 0's weights: every rank must load the same
// folder. LoRA needs the frozen base whole on every rank: use LoadModel.
func LoadModelSharded(dir string, opts ModelOptions, rank, world int) (*Model, error) {
	if world < 1 || rank < 0 || rank >= world {
		return nil, fmt.Errorf("train: LoadModelSharded: rank %d of %d", rank, world)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	if cfg.TieWordEmbeddings {
		return nil, fmt.Errorf("train: LoadModelSharded: %s ties its input and output embeddings, which ZeroStage 3 does not support", dir)
	}
	m, err := newSkeleton(cfg, opts)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("train: loading %s: %w", dir, err)
	}
	defer set.Close()
	pl := &zeroPreload{rank: rank, world: world, shape: map[string][]int64{}, piece: map[string]*ts.Tensor{}}
	fail := func(err error) (*Model, error) {
		pl.drop()
		m.Drop()
		return nil, err
	}
	bs := m.bindings()
	var buf []byte
	for _, b := range bs {
		info, ok := set.Info(b.name)
		if !ok {
			return fail(fmt.Errorf("train: %s: tensor %s is %w", dir, b.name, errNoTensor))
		}
		if !slices.Equal(info.Shape, b.shape) {
			return fail(fmt.Errorf("train: %s: tensor %s has shape %v; the model (per config.json) needs %v", dir, b.name, info.Shape, b.shape))
		}
		kind, ok := stToGotch[info.DType]
		if !ok {
			return fail(fmt.Errorf("train: %s: tensor %s is %s; want BF16, F16, F32 or F64", dir, b.name, info.DType))
		}
		// The same split as the optimizer's (zeroPartitionPerParam).
		var pc *zeroPiece
		if ps := zeroPartitionPerParam([]int64{info.NumElements()}, world)[rank]; len(ps) > 0 {
			pc = &ps[0]
		}
		var piece *ts.Tensor
		if pc != nil {
			raw, err := set.ReadRange(b.name, pc.start, pc.n, buf)
			if err != nil {
				return fail(fmt.Errorf("train: %w", err))
			}
			buf = raw
			if piece, err = ts.OfDataSize(raw, []int64{pc.n}, kind); err != nil {
				return fail(fmt.Errorf("train: %s: tensor %s: %w", dir, b.name, err))
			}
		} else {
			piece = ts.MustEmpty([]int64{0}, kind, gotch.CPU)
		}
		if kind != m.opts.dtype() {
			piece = piece.MustTotype(m.opts.dtype(), true)
		}
		if !sameDevice(m.opts.device(), gotch.CPU) {
			piece = piece.MustTo(m.opts.device(), true)
		}
		pl.shape[b.name], pl.piece[b.name] = b.shape, piece
		// The parameter itself holds nothing until gathered.
		t := ts.MustEmpty([]int64{0}, m.opts.dtype(), m.opts.device())
		t.MustRequiresGrad_(true)
		*b.t = t
	}
	if err := m.readGenerationConfig(filepath.Join(dir, "generation_config.json")); err != nil {
		return fail(err)
	}
	m.units = pl
	return m, nil
}

// preloaded is m's sharded load, nil when it was not loaded sharded.
func preloaded(m *Model) *zeroPreload {
	if m == nil {
		return nil
	}
	pl, _ := m.units.(*zeroPreload)
	return pl
}

// checkPreload tells whether z (before its pieces exist) can take the
// sharded load pl.
func (z *zeroOptimizer) checkPreload(pl *zeroPreload, m *Model) error {
	switch {
	case z.stage != 3:
		return fmt.Errorf("train: the model was loaded sharded (LoadModelSharded): train it with ZeroStage 3, not %d", z.stage)
	case pl.world != z.world || pl.rank != z.rank:
		return fmt.Errorf("train: the model was loaded sharded as rank %d of %d; this process is rank %d of %d", pl.rank, pl.world, z.rank, z.world)
	case m.lora.cfg != nil:
		return fmt.Errorf("train: a model loaded sharded (LoadModelSharded) cannot take LoRA adapters: load the frozen base with LoadModel")
	}
	for _, p := range z.params {
		if pl.shape[p.Name] == nil {
			return fmt.Errorf("train: parameter %s is not in the sharded load", p.Name)
		}
	}
	return nil
}

// takePiece hands the optimizer the loaded piece of parameter name.
func (pl *zeroPreload) takePiece(name string) *ts.Tensor {
	t := pl.piece[name]
	delete(pl.piece, name)
	return t
}

// pieceView is the loaded piece of parameter name, read without taking it.
func (pl *zeroPreload) pieceView(name string) *ts.Tensor {
	var v *ts.Tensor
	torchx.NoGrad(func() { v = pl.piece[name].MustShallowClone() })
	return v
}

// wholeShape is parameter name's whole shape in the sharded load (false
// when pl is nil or lacks it).
func (pl *zeroPreload) wholeShape(name string) ([]int64, bool) {
	if pl == nil {
		return nil, false
	}
	s, ok := pl.shape[name]
	return s, ok
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/pltune/pltune/train/safetensors"
)

// Consolidation of a ZeRO checkpoint into the Hugging Face layout, without
// libtorch and without a model in memory: the checkpoint's layout file
// (zeroLayoutFile, written by rank 0 with the checkpoint) names the
// model's tensors, their shapes, the Hugging Face config and, under LoRA,
// the PEFT adapter config; the weights come from the parameters file
// (stages 1 and 2: whole, fp32) or are assembled from the ranks' shard
// files (stage 3: each rank's pieces, fp32), one tensor at a time as the
// safetensors writer asks for it. So the process holds one tensor (fp32
// plus its encoding) at a time, however large the model.

// zeroLayoutFile describes a ZeRO checkpoint's model for consolidation.
const zeroLayoutFile = "zero_layout.json"

// DefaultConsolidateShardBytes is the largest weights file
// ConsolidateZeroCheckpoint writes by default: 5 GB, transformers'
// save_pretrained default; larger models get shards plus
// model.safetensors.index.json.
const DefaultConsolidateShardBytes = 5_000_000_000

type zeroLayout struct {
	WorldSize int `json:"world_size"`
	ZeroStage int `json:"zero_stage"`
	// Config is the Hugging Face config.json of the model (absent when the
	// run had no TrainerConfig.Model).
	Config json.RawMessage `json:"config,omitempty"`
	// Adapter is the PEFT adapter_config.json under LoRA: then Tensors are
	// the adapters, named as in adapter_model.safetensors.
	Adapter json.RawMessage `json:"adapter_config,omitempty"`
	// Tensors are the saved tensors in the Hugging Face (or PEFT) order.
	Tensors []zeroLayoutTensor `json:"tensors"`
}

type zeroLayoutTensor struct {
	Name  string  `json:"name"`            // in the saved files
	Param string  `json:"param,omitempty"` // the training parameter; "" when frozen (not in the checkpoint)
	Shape []int64 `json:"shape"`
}

// writeZeroLayout writes dir's layout file for the run's model m (nil: the
// layout lists the trainable parameters only, without config).
func (z *zeroOptimizer) writeZeroLayout(dir string, m *Model) error {
	l := zeroLayout{WorldSize: z.world, ZeroStage: z.stage}
	trained := map[string]int{}
	for i, p := range z.params {
		trained[p.Name] = i
	}
	shape := func(i int) []int64 {
		if z.shape != nil {
			return z.shape[i]
		}
		return z.params[i].T.MustSize()
	}
	switch {
	case m != nil && m.lora.cfg != nil:
		js, err := json.Marshal(m.peftConfig(""))
		if err != nil {
			return err
		}
		l.Adapter = js
		for i, p := range z.params {
			l.Tensors = append(l.Tensors, zeroLayoutTensor{Name: peftPrefix + p.Name, Param: p.Name, Shape: shape(i)})
		}
	case m != nil:
		for _, b := range m.bindings() {
			t := zeroLayoutTensor{Name: b.name, Shape: b.shape}
			if _, ok := trained[b.name]; ok {
				t.Param = b.name
			}
			l.Tensors = append(l.Tensors, t)
		}
	default:
		for i, p := range z.params {
			l.Tensors = append(l.Tensors, zeroLayoutTensor{Name: p.Name, Param: p.Name, Shape: shape(i)})
		}
	}
	if m != nil {
		js, err := json.Marshal(m.Config)
		if err != nil {
			return err
		}
		l.Config = js
	}
	b, err := json.MarshalIndent(l, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, zeroLayoutFile), b, 0o644)
}

// ConsolidateOptions configures ConsolidateZeroCheckpoint.
type ConsolidateOptions struct {
	// DType is the stored precision of a full model: by default the
	// config's torch_dtype (bfloat16, float16, float32), else F32.
	// Adapters are always F32, as PEFT saves them.
	DType safetensors.DType
	// MaxShardBytes splits the weights into shards of at most this size
	// with an index; 0 means DefaultConsolidateShardBytes, < 0 one file.
	MaxShardBytes int64
	// BaseDir is a Hugging Face folder the tensors frozen during a full
	// fine-tune are read from (they are not in a checkpoint).
	BaseDir string
	// TokenizerDir, when set, is a folder whose tokenizer files are copied
	// next to the weights (CopyTokenizerFiles).
	TokenizerDir string
	// Progress, when set, is called after each tensor written.
	Progress func(done, total int)
}

// ConsolidateZeroCheckpoint converts the ZeRO checkpoint folder ckptDir
// (checkpoint-N of a run with TrainerConfig.ZeroStage 1–3) into the
// Hugging Face layout in outDir: config.json, generation_config.json and
// model.safetensors (or shards of at most MaxShardBytes plus
// model.safetensors.index.json) for a full fine-tune; adapter_config.json
// and adapter_model.safetensors for LoRA. It streams: one tensor is
// assembled, from the ranks' shard files under stage 3, and written at a
// time, so it never holds the whole model. It needs no libtorch.
func ConsolidateZeroCheckpoint(ctx context.Context, ckptDir, outDir string, opts ConsolidateOptions) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("train: consolidating %s: %s", ckptDir, fmt.Sprintf(format, a...))
	}
	b, err := os.ReadFile(filepath.Join(ckptDir, zeroLayoutFile))
	if errors.Is(err, os.ErrNotExist) {
		return fail("no %s: not a ZeRO checkpoint (or written before pltune recorded its layout)", zeroLayoutFile)
	}
	if err != nil {
		return fail("%v", err)
	}
	var l zeroLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return fail("%s: %v", zeroLayoutFile, err)
	}
	if len(l.Config) == 0 && len(l.Adapter) == 0 {
		return fail("%s has no model config (the run had no TrainerConfig.Model)", zeroLayoutFile)
	}
	var base *safetensors.Set
	for _, t := range l.Tensors {
		if t.Param == "" && base == nil {
			if opts.BaseDir == "" {
				return fail("tensor %s was frozen and is not in the checkpoint: set ConsolidateOptions.BaseDir to the base model's folder", t.Name)
			}
			if base, err = safetensors.OpenDir(opts.BaseDir); err != nil {
				return fail("base model: %v", err)
			}
			defer base.Close()
		}
	}
	src, err := openZeroWeights(ckptDir, l)
	if err != nil {
		return fail("%v", err)
	}
	defer src.close()
	dt := safetensors.F32
	var cfg map[string]any
	if len(l.Adapter) == 0 {
		if err := json.Unmarshal(l.Config, &cfg); err != nil {
			return fail("config: %v", err)
		}
		dt = opts.DType
		if dt == "" {
			s, _ := cfg["torch_dtype"].(string)
			if dt = torchDTypes[s]; dt == "" {
				dt = safetensors.F32
			}
		}
		name, ok := map[safetensors.DType]string{safetensors.BF16: "bfloat16", safetensors.F16: "float16", safetensors.F32: "float32"}[dt]
		if !ok {
			return fail("ConsolidateOptions.DType %q: want BF16, F16 or F32", dt)
		}
		cfg["torch_dtype"] = name
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fail("%v", err)
	}
	done := 0
	srcs := make([]safetensors.Source, len(l.Tensors))
	for i, t := range l.Tensors {
		srcs[i] = safetensors.Source{
			Tensor: safetensors.Tensor{Name: t.Name, DType: dt, Shape: t.Shape},
			Data: func() ([]byte, error) {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				var vals []float32
				var err error
				if t.Param == "" {
					vals, err = base.ReadFloat32(t.Name)
				} else {
					vals, err = src.read(t.Param, t.Shape)
				}
				if err != nil {
					return nil, err
				}
				if n := (safetensors.Tensor{Shape: t.Shape}).NumElements(); int64(len(vals)) != n {
					return nil, fmt.Errorf("%s: %d elements, its shape %v has %d", t.Name, len(vals), t.Shape, n)
				}
				out, err := safetensors.EncodeFloat32(nil, dt, vals)
				done++
				if opts.Progress != nil {
					opts.Progress(done, len(l.Tensors))
				}
				return out, err
			},
		}
	}
	meta := map[string]string{"format": "pt"}
	if len(l.Adapter) > 0 {
		if err := safetensors.WriteFile(filepath.Join(outDir, "adapter_model.safetensors"), srcs, meta); err != nil {
			return fail("%v", err)
		}
		var pretty json.RawMessage
		if err := json.Unmarshal(l.Adapter, &pretty); err != nil {
			return fail("adapter config: %v", err)
		}
		js, _ := json.MarshalIndent(pretty, "", "  ")
		if err := writeJSONFile(filepath.Join(outDir, "adapter_config.json"), js); err != nil {
			return err
		}
	} else {
		shard := opts.MaxShardBytes
		switch {
		case shard == 0:
			shard = DefaultConsolidateShardBytes
		case shard < 0:
			shard = 0
		}
		if _, err := safetensors.WriteSharded(outDir, srcs, shard, meta); err != nil {
			return fail("%v", err)
		}
		js, _ := json.MarshalIndent(cfg, "", "  ")
		if err := writeJSONFile(filepath.Join(outDir, "config.json"), js); err != nil {
			return err
		}
		gen := map[string]any{"_from_model_config": true}
		for _, k := range []string{"bos_token_id", "eos_token_id"} {
			if v, ok := cfg[k]; ok && v != nil {
				gen[k] = v
			}
		}
		js, _ = json.MarshalIndent(gen, "", "  ")
		if err := writeJSONFile(filepath.Join(outDir, "generation_config.json"), js); err != nil {
			return err
		}
	}
	if opts.TokenizerDir != "" {
		return CopyTokenizerFiles(opts.TokenizerDir, outDir)
	}
	return nil
}

// zeroWeights reads a checkpoint's trained parameters whole.
type zeroWeights struct {
	params *safetensors.File   // stages 1, 2
	shards []*safetensors.File // stage 3, per rank
	pieces map[string][]zeroWeightPiece
}

type zeroWeightPiece struct {
	file       *safetensors.File
	name       string
	start, end int64
}

// zeroPieceRE parses zeroPieceName("weight", …).
var zeroPieceRE = regexp.MustCompile(`^weight\.(.+)\[(\d+):(\d+)\]$`)

func openZeroWeights(dir string, l zeroLayout) (*zeroWeights, error) {
	w := &zeroWeights{pieces: map[string][]zeroWeightPiece{}}
	if l.ZeroStage < 3 {
		f, err := safetensors.OpenFile(filepath.Join(dir, paramsFile))
		if err != nil {
			return nil, err
		}
		w.params = f
		return w, nil
	}
	for r := range l.WorldSize {
		f, err := safetensors.OpenFile(filepath.Join(dir, zeroShardFile(r, l.WorldSize)))
		if err != nil {
			w.close()
			return nil, fmt.Errorf("rank %d's shard: %w", r, err)
		}
		w.shards = append(w.shards, f)
		for _, n := range f.Names() {
			m := zeroPieceRE.FindStringSubmatch(n)
			if m == nil {
				continue
			}
			a, _ := strconv.ParseInt(m[2], 10, 64)
			b, _ := strconv.ParseInt(m[3], 10, 64)
			w.pieces[m[1]] = append(w.pieces[m[1]], zeroWeightPiece{file: f, name: n, start: a, end: b})
		}
	}
	for _, ps := range w.pieces {
		slices.SortFunc(ps, func(a, b zeroWeightPiece) int { return cmpInt64(a.start, b.start) })
	}
	return w, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// read returns parameter name whole (fp32), checking that its pieces
// cover shape's elements exactly once.
func (w *zeroWeights) read(name string, shape []int64) ([]float32, error) {
	if w.params != nil {
		return w.params.ReadFloat32(name)
	}
	n := safetensors.Tensor{Shape: shape}.NumElements()
	out := make([]float32, n)
	var at int64
	for _, pc := range w.pieces[name] {
		if pc.start != at || pc.end > n {
			return nil, fmt.Errorf("%s: the shards' pieces do not tile its %d elements (piece [%d:%d] after %d)", name, n, pc.start, pc.end, at)
		}
		v, err := pc.file.ReadFloat32(pc.name)
		if err != nil {
			return nil, err
		}
		if int64(len(v)) != pc.end-pc.start {
			return nil, fmt.Errorf("%s: piece %s holds %d elements", name, pc.name, len(v))
		}
		copy(out[pc.start:], v)
		at = pc.end
	}
	if at != n {
		return nil, fmt.Errorf("%s: the shards hold %d of its %d elements", name, at, n)
	}
	return out, nil
}

func (w *zeroWeights) close() {
	if w.params != nil {
		w.params.Close()
	}
	for _, f := range w.shards {
		f.Close()
	}
}

// IsZeroCheckpoint reports whether dir is a checkpoint of a ZeRO run that
// ConsolidateZeroCheckpoint can read (it records its layout).
func IsZeroCheckpoint(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, zeroLayoutFile))
	return err == nil
}

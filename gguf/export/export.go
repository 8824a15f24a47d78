// Package export writes a Hugging Face checkpoint folder (Llama, Mistral or
// Mixtral: config.json, safetensors, tokenizer.json) as a GGUF file for
// llama.cpp, ollama and LM Studio, merging a PEFT LoRA adapter on the way
// when one is given. It is pure Go: neither libtorch nor Python.
//
// The file is what llama.cpp's convert_hf_to_gguf.py writes for the same
// folder: architecture "llama" with its hyper-parameter keys, tensor names
// (token_embd, blk.N.attn_q, …, output_norm, output), the rotary Q/K row
// permutation, Llama-3 rope scaling as the rope_freqs tensor, Mixtral's
// experts stacked into blk.N.ffn_{gate,up,down}_exps, F32 for 1-D tensors,
// norms and the router, and the tokenizer as GGUF metadata (see vocab.go).
//
// Tensors are streamed: each is read in blocks of rows, converted and
// written before the next block is read, so memory stays at a few
// megabytes plus the tokenizer whatever the model's size. The file is
// written under a temporary name and renamed when complete, so a cancelled
// or failed export leaves no partial GGUF behind.
package export

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/pltune/pltune/gguf"
	"github.com/pltune/pltune/train/hfconfig"
	"github.com/pltune/pltune/train/safetensors"
)

// Options tune an export. The zero value writes F32 without an adapter.
type Options struct {
	// Type is the type of the matrices: gguf.F32, F16, BF16 or Q8_0.
	// 1-D tensors, norms, rope_freqs and the MoE router stay F32 as in
	// llama.cpp; a Q8_0 matrix whose rows are not a multiple of 32 values
	// falls back to F16 (llama.cpp's converter does the same).
	Type gguf.TensorType
	// AdapterDir is a PEFT LoRA adapter folder (adapter_config.json,
	// adapter_model.safetensors) merged into the weights: W + scale·B·A in
	// float32, scale = lora_alpha/r (lora_alpha/√r with use_rslora).
	AdapterDir string
	// Name is general.name; the model folder's name when empty.
	Name string
	// Progress, when set, is called after each tensor is written.
	Progress func(Progress)
}

// Progress reports how far an export is.
type Progress struct {
	Tensor      string // the GGUF name of the tensor just written
	Done, Total int    // tensors written, tensors in the file
	Bytes       int64  // tensor data bytes written so far
}

// Result describes a written file.
type Result struct {
	Path      string
	Tensors   int
	Bytes     int64  // file size
	Tokenizer string // the tokenizer family: llama-bpe, qwen2, llama-spm, gemma-spm
	Merged    int    // weights with a LoRA adapter merged in
}

// plannedTensor is one GGUF tensor and how to produce its bytes.
type plannedTensor struct {
	info gguf.TensorInfo
	fill func(ctx context.Context, w io.Writer) error
}

// Export writes the model folder modelDir as the GGUF file out.
func Export(ctx context.Context, modelDir, out string, opts Options) (*Result, error) {
	switch opts.Type {
	case gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0:
	default:
		return nil, fmt.Errorf("export: type %v is not supported; want F32, F16, BF16 or Q8_0", opts.Type)
	}
	cfg, err := hfconfig.Load(filepath.Join(modelDir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	set, err := safetensors.OpenDir(modelDir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer set.Close()
	var ad *adapter
	if opts.AdapterDir != "" {
		if ad, err = openAdapter(opts.AdapterDir); err != nil {
			return nil, err
		}
		defer ad.close()
	}
	voc, err := loadVocab(modelDir, cfg.VocabSize)
	if err != nil {
		return nil, err
	}
	tensors, merged, err := plan(cfg, set, ad, opts.Type)
	if err != nil {
		return nil, err
	}
	if ad != nil && merged != len(ad.modules) {
		return nil, fmt.Errorf("export: %s: %d of the adapter's %d modules match no weight of %s", opts.AdapterDir, len(ad.modules)-merged, len(ad.modules), modelDir)
	}
	name := opts.Name
	if name == "" {
		abs, _ := filepath.Abs(modelDir)
		name = filepath.Base(abs)
	}
	kv := append(hparams(cfg, name, opts.Type), voc.kv...)
	infos := make([]gguf.TensorInfo, len(tensors))
	for i, t := range tensors {
		infos[i] = t.info
	}

	tmp := out + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 4<<20)
	gw, err := gguf.NewWriter(bw, kv, infos)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var written int64
	for i, t := range tensors {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if err := gw.WriteTensor(t.info.Name, func(w io.Writer) error { return t.fill(ctx, w) }); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		n, _ := t.info.Bytes()
		written += n
		if opts.Progress != nil {
			opts.Progress(Progress{Tensor: t.info.Name, Done: i + 1, Total: len(tensors), Bytes: written})
		}
	}
	if err := gw.Close(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	ok = true
	return &Result{Path: out, Tensors: len(tensors), Bytes: st.Size(), Tokenizer: voc.family, Merged: merged}, nil
}

// hparams are the general.* and llama.* keys convert_hf_to_gguf.py writes
// for a Llama, Mistral or Mixtral config.
func hparams(c *hfconfig.Config, name string, t gguf.TensorType) []gguf.KV {
	ctxLen := c.MaxPositionEmbeddings
	if ctxLen == 0 {
		ctxLen = 2048 // transformers' LlamaConfig default
	}
	kv := []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.type", Value: "model"},
		{Key: "general.name", Value: name},
		{Key: "llama.block_count", Value: uint32(c.NumHiddenLayers)},
		{Key: "llama.context_length", Value: uint32(ctxLen)},
		{Key: "llama.embedding_length", Value: uint32(c.HiddenSize)},
		{Key: "llama.feed_forward_length", Value: uint32(c.IntermediateSize)},
		{Key: "llama.attention.head_count", Value: uint32(c.NumAttentionHeads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(c.NumKeyValueHeads)},
		{Key: "llama.rope.freq_base", Value: float32(c.RopeTheta)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(c.RMSNormEps)},
	}
	if c.IsMoE() {
		kv = append(kv,
			gguf.KV{Key: "llama.expert_count", Value: uint32(c.NumLocalExperts)},
			gguf.KV{Key: "llama.expert_used_count", Value: uint32(c.NumExpertsPerTok)})
	}
	// pltune's config.json always carries head_dim; llama.cpp's converter
	// writes the key and value lengths whenever it is present.
	kv = append(kv,
		gguf.KV{Key: "llama.attention.key_length", Value: uint32(c.HeadDim)},
		gguf.KV{Key: "llama.attention.value_length", Value: uint32(c.HeadDim)})
	if c.SlidingWindow > 0 {
		// Kept for the record: llama.cpp's "llama" architecture (and its
		// own converter, which drops the key) attends to the whole context.
		kv = append(kv, gguf.KV{Key: "llama.attention.sliding_window", Value: uint32(c.SlidingWindow)})
	}
	kv = append(kv,
		gguf.KV{Key: "general.file_type", Value: t.FileType()},
		gguf.KV{Key: "llama.vocab_size", Value: uint32(c.VocabSize)},
		gguf.KV{Key: "llama.rope.dimension_count", Value: uint32(c.HeadDim)},
		gguf.KV{Key: "general.quantization_version", Value: uint32(gguf.QuantVersion)},
	)
	return kv
}

var (
	layerRe  = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)
	expertRe = regexp.MustCompile(`^block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$`)
)

// layerNames maps a layer's Hugging Face suffix to its GGUF suffix.
var layerNames = map[string]string{
	"input_layernorm.weight":          "attn_norm.weight",
	"self_attn.q_proj.weight":         "attn_q.weight",
	"self_attn.k_proj.weight":         "attn_k.weight",
	"self_attn.v_proj.weight":         "attn_v.weight",
	"self_attn.o_proj.weight":         "attn_output.weight",
	"post_attention_layernorm.weight": "ffn_norm.weight",
	"mlp.gate_proj.weight":            "ffn_gate.weight",
	"mlp.up_proj.weight":              "ffn_up.weight",
	"mlp.down_proj.weight":            "ffn_down.weight",
	"block_sparse_moe.gate.weight":    "ffn_gate_inp.weight",
}

var expertNames = map[string]string{"w1": "ffn_gate_exps.weight", "w2": "ffn_down_exps.weight", "w3": "ffn_up_exps.weight"}

// source is a run of rows of one safetensors tensor.
type source struct {
	name    string
	info    safetensors.TensorInfo
	lora    *loraPair // nil without an adapter on this weight
	permute int       // rotary heads whose rows are interleaved (0: none)
}

// plan lists the GGUF tensors in llama.cpp's converter order: rope_freqs
// first, then the checkpoint's tensors in file order (experts stacked at
// the first of theirs).
func plan(c *hfconfig.Config, set *safetensors.Set, ad *adapter, t gguf.TensorType) ([]plannedTensor, int, error) {
	var out []plannedTensor
	if rs := c.RopeScaling; rs != nil && rs.Type == "llama3" {
		f := ropeFactors(c)
		out = append(out, plannedTensor{
			info: gguf.TensorInfo{Name: "rope_freqs.weight", Dims: []int64{int64(len(f))}, Type: gguf.F32},
			fill: func(_ context.Context, w io.Writer) error {
				b, _ := gguf.EncodeRow(nil, gguf.F32, f)
				_, err := w.Write(b)
				return err
			},
		})
	}
	merged := 0
	used := map[string]bool{}
	experts := map[string]bool{}
	for _, hf := range set.Names() {
		if strings.HasSuffix(hf, "rotary_emb.inv_freq") {
			continue
		}
		info, _ := set.Info(hf)
		var name string
		var srcs []source
		switch {
		case hf == "model.embed_tokens.weight":
			name = "token_embd.weight"
		case hf == "model.norm.weight":
			name = "output_norm.weight"
		case hf == "lm_head.weight":
			name = "output.weight"
		default:
			m := layerRe.FindStringSubmatch(hf)
			if m == nil {
				return nil, 0, fmt.Errorf("export: tensor %q is not part of a Llama, Mistral or Mixtral checkpoint", hf)
			}
			bid, _ := strconv.Atoi(m[1])
			if bid >= c.NumHiddenLayers {
				return nil, 0, fmt.Errorf("export: tensor %q: layer %d, but num_hidden_layers is %d", hf, bid, c.NumHiddenLayers)
			}
			if em := expertRe.FindStringSubmatch(m[2]); em != nil {
				key := m[1] + "." + em[2]
				if experts[key] {
					continue
				}
				experts[key] = true
				if !c.IsMoE() {
					return nil, 0, fmt.Errorf("export: tensor %q: experts in a %s checkpoint", hf, c.Architecture)
				}
				name = fmt.Sprintf("blk.%d.%s", bid, expertNames[em[2]])
				for e := 0; e < c.NumLocalExperts; e++ {
					en := fmt.Sprintf("model.layers.%d.block_sparse_moe.experts.%d.%s.weight", bid, e, em[2])
					ei, ok := set.Info(en)
					if !ok {
						return nil, 0, fmt.Errorf("export: %s is missing (num_local_experts is %d)", en, c.NumLocalExperts)
					}
					srcs = append(srcs, source{name: en, info: ei})
				}
				break
			}
			g, ok := layerNames[m[2]]
			if !ok {
				return nil, 0, fmt.Errorf("export: tensor %q is not part of a Llama, Mistral or Mixtral checkpoint", hf)
			}
			name = fmt.Sprintf("blk.%d.%s", bid, g)
		}
		if srcs == nil {
			srcs = []source{{name: hf, info: info}}
		}
		for i := range srcs {
			s := &srcs[i]
			if err := checkSource(s.info); err != nil {
				return nil, 0, err
			}
			if strings.HasSuffix(s.name, "q_proj.weight") {
				s.permute = c.NumAttentionHeads
			} else if strings.HasSuffix(s.name, "k_proj.weight") {
				s.permute = c.NumKeyValueHeads
			}
			if ad != nil {
				lp, err := ad.pair(strings.TrimSuffix(s.name, ".weight"), s.info)
				if err != nil {
					return nil, 0, err
				}
				if lp != nil {
					s.lora = lp
					merged++
				}
			}
		}
		shape := srcs[0].info.Shape
		for _, s := range srcs[1:] {
			if !equalShape(s.info.Shape, shape) {
				return nil, 0, fmt.Errorf("export: %s has shape %v, %s has %v; experts must agree", s.name, s.info.Shape, srcs[0].name, shape)
			}
		}
		if err := checkShape(c, name, srcs, shape); err != nil {
			return nil, 0, err
		}
		dims := make([]int64, 0, len(shape)+1)
		for i := len(shape) - 1; i >= 0; i-- {
			dims = append(dims, shape[i])
		}
		if len(srcs) > 1 {
			dims = append(dims, int64(len(srcs)))
		}
		tt := tensorType(name, len(dims), dims[0], t)
		used[name] = true
		out = append(out, plannedTensor{
			info: gguf.TensorInfo{Name: name, Dims: dims, Type: tt},
			fill: func(ctx context.Context, w io.Writer) error { return stream(ctx, w, set, srcs, tt) },
		})
	}
	for _, need := range []string{"token_embd.weight", "output_norm.weight"} {
		if !used[need] {
			return nil, 0, fmt.Errorf("export: the checkpoint has no tensor for %s", need)
		}
	}
	if !used["output.weight"] && !c.TieWordEmbeddings {
		return nil, 0, fmt.Errorf("export: the checkpoint has no lm_head.weight and tie_word_embeddings is false")
	}
	return out, merged, nil
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkSource(i safetensors.TensorInfo) error {
	switch i.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
	default:
		return fmt.Errorf("export: tensor %q is %s; want a float type (F32, F16, BF16, F64)", i.Name, i.DType)
	}
	if len(i.Shape) < 1 || len(i.Shape) > 2 {
		return fmt.Errorf("export: tensor %q has shape %v; want 1 or 2 dimensions", i.Name, i.Shape)
	}
	for _, d := range i.Shape {
		if d <= 0 {
			return fmt.Errorf("export: tensor %q has an empty dimension in shape %v", i.Name, i.Shape)
		}
	}
	return nil
}

// checkShape compares a tensor's shape with the config, so a file llama.cpp
// would refuse is refused here with the tensor's name.
func checkShape(c *hfconfig.Config, name string, srcs []source, shape []int64) error {
	V, D, I := int64(c.VocabSize), int64(c.HiddenSize), int64(c.IntermediateSize)
	q, kv := int64(c.NumAttentionHeads*c.HeadDim), int64(c.NumKeyValueHeads*c.HeadDim)
	var want []int64
	switch suffix := name[strings.LastIndexByte(strings.TrimSuffix(name, ".weight"), '.')+1:]; suffix {
	case "token_embd.weight", "output.weight":
		want = []int64{V, D}
	case "output_norm.weight", "attn_norm.weight", "ffn_norm.weight":
		want = []int64{D}
	case "attn_q.weight":
		want = []int64{q, D}
	case "attn_k.weight", "attn_v.weight":
		want = []int64{kv, D}
	case "attn_output.weight":
		want = []int64{D, q}
	case "ffn_gate.weight", "ffn_up.weight", "ffn_gate_exps.weight", "ffn_up_exps.weight":
		want = []int64{I, D}
	case "ffn_down.weight", "ffn_down_exps.weight":
		want = []int64{D, I}
	case "ffn_gate_inp.weight":
		want = []int64{int64(c.NumLocalExperts), D}
	}
	if want != nil && !equalShape(shape, want) {
		return fmt.Errorf("export: %s has shape %v; config.json implies %v", srcs[0].name, shape, want)
	}
	for _, s := range srcs {
		if s.permute > 0 && (shape[0]%int64(s.permute) != 0 || shape[0]/int64(s.permute)%2 != 0) {
			return fmt.Errorf("export: %s: %d rows do not split into %d heads of even size", s.name, shape[0], s.permute)
		}
	}
	return nil
}

// tensorType is the GGUF type of a tensor as llama.cpp's converter picks it.
func tensorType(name string, nDims int, rowLen int64, want gguf.TensorType) gguf.TensorType {
	if nDims <= 1 || strings.HasSuffix(name, "_norm.weight") || strings.HasSuffix(name, "ffn_gate_inp.weight") {
		return gguf.F32
	}
	if want == gguf.Q8_0 && rowLen%gguf.Q8Block != 0 {
		return gguf.F16
	}
	return want
}

// chunkBytes is about how much of a source tensor is read at once.
const chunkBytes = 1 << 20

// stream writes the rows of srcs (stacked, for experts) converted to t.
// Each block of rows is decoded (and the adapter added) and encoded by
// GOMAXPROCS workers, then written in order.
func stream(ctx context.Context, w io.Writer, set *safetensors.Set, srcs []source, t gguf.TensorType) error {
	var raw, enc []byte
	var vals []float32
	workers := runtime.GOMAXPROCS(0)
	deltas := make([][]float32, workers)
	for _, s := range srcs {
		f, ok := set.File(s.name)
		if !ok {
			return fmt.Errorf("%s: not in the checkpoint", s.name)
		}
		sec, err := f.Section(s.name)
		if err != nil {
			return err
		}
		rows, cols := int64(1), s.info.Shape[0]
		if len(s.info.Shape) == 2 {
			rows, cols = s.info.Shape[0], s.info.Shape[1]
		}
		es := s.info.DType.Size()
		rb, err := t.RowBytes(cols)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		step := int64(1)
		if s.permute > 0 {
			step = rows / int64(s.permute) // one head's rows
		}
		per := max(step, chunkBytes/(cols*es)/step*step)
		var la, lb []float32
		if s.lora != nil {
			if la, lb, err = s.lora.load(); err != nil {
				return err
			}
		}
		for r0 := int64(0); r0 < rows; r0 += per {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(per, rows-r0)
			raw = grow(raw, n*cols*es)
			if _, err := sec.ReadAt(raw, r0*cols*es); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			vals = grow(vals, n*cols)
			enc = grow(enc, n*rb)
			if err := parallelRows(n, workers, func(wk int, a, b int64) error {
				if err := safetensors.DecodeFloat32(vals[a*cols:b*cols], s.info.DType, raw[a*cols*es:b*cols*es]); err != nil {
					return err
				}
				if s.lora != nil {
					deltas[wk] = s.lora.addDelta(vals[a*cols:b*cols], la, lb, r0+a, b-a, cols, deltas[wk])
				}
				return nil
			}); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if s.permute > 0 {
				permuteRows(vals, n, cols, step)
			}
			if err := parallelRows(n, workers, func(_ int, a, b int64) error {
				for r := a; r < b; r++ {
					if _, err := gguf.EncodeRow(enc[r*rb:r*rb:(r+1)*rb], t, vals[r*cols:(r+1)*cols]); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if _, err := w.Write(enc); err != nil {
				return err
			}
		}
	}
	return nil
}

func grow[T any](b []T, n int64) []T {
	if int64(cap(b)) < n {
		return make([]T, n)
	}
	return b[:n]
}

// parallelRows splits rows [0, n) into up to workers ranges and runs f on
// each concurrently; small blocks run on the calling goroutine.
func parallelRows(n int64, workers int, f func(worker int, a, b int64) error) error {
	if workers <= 1 || n < 2 {
		return f(0, 0, n)
	}
	k := min(int64(workers), n)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := int64(0); i < k; i++ {
		a, b := n*i/k, n*(i+1)/k
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(int(i), a, b)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// permuteRows applies convert_hf_to_gguf.py's LlamaModel.permute to n rows
// (whole heads of hd rows each): within a head, output row 2i+j is input
// row j·hd/2+i, turning Hugging Face's half-split rotary layout into the
// interleaved pairs ggml's rope expects.
func permuteRows(vals []float32, n, cols, hd int64) {
	half := hd / 2
	tmp := make([]float32, hd*cols)
	for h := int64(0); h < n/hd; h++ {
		head := vals[h*hd*cols : (h+1)*hd*cols]
		copy(tmp, head)
		for i := int64(0); i < half; i++ {
			for j := int64(0); j < 2; j++ {
				copy(head[(2*i+j)*cols:(2*i+j+1)*cols], tmp[(j*half+i)*cols:(j*half+i+1)*cols])
			}
		}
	}
}

// ropeFactors is the rope_freqs tensor of llama.cpp's converter for llama3
// rope scaling, computed in float32 as its torch code does.
func ropeFactors(c *hfconfig.Config) []float32 {
	rs := c.RopeScaling
	dim := c.HeadDim
	base := c.RopeTheta
	factor := float32(rs.Factor)
	low, high := float32(rs.LowFreqFactor), float32(rs.HighFreqFactor)
	old := float32(rs.OriginalMaxPositionEmbeddings)
	lowWave, highWave := old/low, old/high
	out := make([]float32, 0, dim/2)
	for i := 0; i < dim; i += 2 {
		exp := float32(i) / float32(dim)
		freq := float32(1 / math.Pow(base, float64(exp)))
		wave := float32(2*math.Pi) / freq
		switch {
		case wave < highWave:
			out = append(out, 1)
		case wave > lowWave:
			out = append(out, factor)
		default:
			smooth := (old/wave - low) / (high - low)
			out = append(out, 1/((1-smooth)/factor+smooth))
		}
	}
	return out
}

// adapter is a PEFT LoRA adapter folder.
type adapter struct {
	dir     string
	file    *safetensors.File
	scale   float32
	modules map[string]bool // module paths with lora_A and lora_B
}

type loraPair struct {
	file         *safetensors.File
	a, b         safetensors.TensorInfo
	scale        float32
	rank, in, on int64
}

const peftPrefix = "base_model.model."

func openAdapter(dir string) (*adapter, error) {
	cfgPath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("export: adapter: %w", err)
	}
	var pc struct {
		PeftType          string  `json:"peft_type"`
		R                 int     `json:"r"`
		LoraAlpha         float64 `json:"lora_alpha"`
		UseRSLoRA         bool    `json:"use_rslora"`
		UseDoRA           bool    `json:"use_dora"`
		FanInFanOut       bool    `json:"fan_in_fan_out"`
		Bias              string  `json:"bias"`
		ModulesToSave     []any   `json:"modules_to_save"`
		LayersToTransform any     `json:"layers_to_transform"`
		RankPattern       map[string]any
		AlphaPattern      map[string]any
	}
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("export: %s: %v", cfgPath, err)
	}
	switch {
	case pc.PeftType != "LORA":
		return nil, fmt.Errorf("export: %s: peft_type %q; only LORA adapters can be merged", cfgPath, pc.PeftType)
	case pc.UseDoRA || pc.FanInFanOut:
		return nil, fmt.Errorf("export: %s: use_dora and fan_in_fan_out are not supported", cfgPath)
	case pc.Bias != "" && pc.Bias != "none":
		return nil, fmt.Errorf("export: %s: bias %q is not supported; want none", cfgPath, pc.Bias)
	case len(pc.ModulesToSave) > 0:
		return nil, fmt.Errorf("export: %s: modules_to_save is not supported", cfgPath)
	case len(pc.RankPattern) > 0 || len(pc.AlphaPattern) > 0:
		return nil, fmt.Errorf("export: %s: rank_pattern and alpha_pattern are not supported", cfgPath)
	case pc.R <= 0:
		return nil, fmt.Errorf("export: %s: r = %d; want a positive rank", cfgPath, pc.R)
	}
	scale := pc.LoraAlpha / float64(pc.R)
	if pc.UseRSLoRA {
		scale = pc.LoraAlpha / math.Sqrt(float64(pc.R))
	}
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("export: adapter: %w", err)
	}
	ad := &adapter{dir: dir, file: f, scale: float32(scale), modules: map[string]bool{}}
	for _, n := range f.Names() {
		mod, ok := strings.CutPrefix(n, peftPrefix)
		if !ok {
			f.Close()
			return nil, fmt.Errorf("export: %s: tensor %q does not start with %q", path, n, peftPrefix)
		}
		switch {
		case strings.HasSuffix(mod, ".lora_A.weight"):
			ad.modules[strings.TrimSuffix(mod, ".lora_A.weight")] = true
		case strings.HasSuffix(mod, ".lora_B.weight"):
			ad.modules[strings.TrimSuffix(mod, ".lora_B.weight")] = true
		default:
			f.Close()
			return nil, fmt.Errorf("export: %s: tensor %q is neither lora_A nor lora_B", path, n)
		}
	}
	return ad, nil
}

func (a *adapter) close() { a.file.Close() }

// pair finds the adapter of the weight at module path mod (nil if none) and
// checks its shapes against the weight's.
func (a *adapter) pair(mod string, w safetensors.TensorInfo) (*loraPair, error) {
	if !a.modules[mod] {
		return nil, nil
	}
	an, bn := peftPrefix+mod+".lora_A.weight", peftPrefix+mod+".lora_B.weight"
	ai, okA := a.file.Info(an)
	bi, okB := a.file.Info(bn)
	if !okA || !okB {
		return nil, fmt.Errorf("export: adapter %s: %s needs both lora_A and lora_B", a.dir, mod)
	}
	if len(w.Shape) != 2 || len(ai.Shape) != 2 || len(bi.Shape) != 2 ||
		ai.Shape[1] != w.Shape[1] || bi.Shape[0] != w.Shape[0] || ai.Shape[0] != bi.Shape[1] {
		return nil, fmt.Errorf("export: adapter %s: %s: lora_A %v and lora_B %v do not fit the weight %v", a.dir, mod, ai.Shape, bi.Shape, w.Shape)
	}
	for _, i := range []safetensors.TensorInfo{ai, bi} {
		if err := checkSource(i); err != nil {
			return nil, err
		}
	}
	return &loraPair{file: a.file, a: ai, b: bi, scale: a.scale, rank: ai.Shape[0], in: ai.Shape[1], on: bi.Shape[0]}, nil
}

func (p *loraPair) load() (a, b []float32, err error) {
	if a, err = p.file.ReadFloat32(p.a.Name); err != nil {
		return nil, nil, err
	}
	if b, err = p.file.ReadFloat32(p.b.Name); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// addDelta adds scale·B[r0:r0+n]·A to the n rows in vals, in float32.
func (p *loraPair) addDelta(vals, a, b []float32, r0, n, cols int64, buf []float32) []float32 {
	if int64(cap(buf)) < cols {
		buf = make([]float32, cols)
	}
	d := buf[:cols]
	for r := int64(0); r < n; r++ {
		clear(d)
		brow := b[(r0+r)*p.rank : (r0+r+1)*p.rank]
		for k, bv := range brow {
			if bv == 0 {
				continue
			}
			arow := a[int64(k)*cols : int64(k+1)*cols]
			for c, av := range arow {
				d[c] += bv * av
			}
		}
		row := vals[r*cols : (r+1)*cols]
		for c := range row {
			row[c] += p.scale * d[c]
		}
	}
	return buf
}

// errNoTokenizer is returned when the folder has no tokenizer.json.
var errNoTokenizer = errors.New("no tokenizer.json")

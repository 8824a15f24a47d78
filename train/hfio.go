package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/hfconfig"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// errNoTensor reports a tensor missing from a checkpoint.
var errNoTensor = errors.New("missing from the checkpoint")

var stToGotch = map[safetensors.DType]gotch.DType{
	safetensors.BF16: gotch.BFloat16,
	safetensors.F16:  gotch.Half,
	safetensors.F32:  gotch.Float,
	safetensors.F64:  gotch.Double,
}

// LoadModel loads a Hugging Face checkpoint folder (config.json plus
// model.safetensors or sharded model-0000X-of-0000N.safetensors with their
// index), one tensor at a time, converting to opts.DType on opts.Device.
func LoadModel(dir string, opts ModelOptions) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	m, err := newSkeleton(cfg, opts)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		m.Drop()
		return nil, fmt.Errorf("train: loading %s: %w", dir, err)
	}
	defer set.Close()
	if err := m.loadTensors(set, m.bindings(), dir); err != nil {
		m.Drop()
		return nil, err
	}
	if err := m.readGenerationConfig(filepath.Join(dir, "generation_config.json")); err != nil {
		m.Drop()
		return nil, err
	}
	return m, nil
}

// readGenerationConfig takes the extra stop tokens (end of turn) that
// generation_config.json lists beyond config.json's EOS.
func (m *Model) readGenerationConfig(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("train: %s: %v", path, err)
	}
	m.genConfig = raw
	var ids []int
	if err := hfconfig.ParseEOS(raw["eos_token_id"], &ids); err != nil {
		return fmt.Errorf("train: %s: %v", path, err)
	}
	for _, id := range ids {
		if id < 0 || id >= m.Config.VocabSize {
			return fmt.Errorf("train: %s: eos_token_id %d is outside the vocabulary (%d)", path, id, m.Config.VocabSize)
		}
	}
	m.genEOS = ids
	return nil
}

// StopIDs are the tokens generation stops at by default: config.json's
// eos_token_id, then generation_config.json's (which a chat model extends
// with its end-of-turn token).
func (m *Model) StopIDs() []int {
	ids := slices.Clone(m.Config.EOSTokenIDs)
	for _, id := range m.genEOS {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (m *Model) loadTensors(set *safetensors.Set, bs []binding, where string) error {
	known := map[string]bool{}
	var buf []byte
	for _, b := range bs {
		known[b.name] = true
		info, ok := set.Info(b.name)
		if !ok {
			return fmt.Errorf("train: %s: tensor %s is %w", where, b.name, errNoTensor)
		}
		if !slices.Equal(info.Shape, b.shape) {
			return fmt.Errorf("train: %s: tensor %s has shape %v; the model (per config.json) needs %v", where, b.name, info.Shape, b.shape)
		}
		kind, ok := stToGotch[info.DType]
		if !ok {
			return fmt.Errorf("train: %s: tensor %s is %s; want BF16, F16, F32 or F64", where, b.name, info.DType)
		}
		raw, err := set.ReadRaw(b.name, buf)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		buf = raw
		t, err := ts.OfDataSize(raw, info.Shape, kind)
		if err != nil {
			return fmt.Errorf("train: %s: tensor %s: %w", where, b.name, err)
		}
		want := m.opts.dtype()
		if b.adapter {
			want = gotch.Float
		}
		if kind != want {
			t = t.MustTotype(want, true)
		}
		if !sameDevice(m.opts.device(), gotch.CPU) {
			t = t.MustTo(m.opts.device(), true)
		}
		// Under LoRA the base is frozen: no gradient is computed or kept
		// for it.
		t.MustRequiresGrad_(b.adapter || m.lora.cfg == nil)
		if *b.t != nil {
			(*b.t).MustDrop()
		}
		*b.t = t
	}
	for _, n := range set.Names() {
		// Old checkpoints store the rotary table; a tied model may still
		// carry its head.
		if known[n] || strings.HasSuffix(n, "rotary_emb.inv_freq") || n == "lm_head.weight" && m.Config.TieWordEmbeddings {
			continue
		}
		return fmt.Errorf("train: %s: unexpected tensor %s for a %s with this config", where, n, m.Config.Architecture)
	}
	return nil
}

// SaveOptions configures Model.Save.
type SaveOptions struct {
	// DType is the stored precision; by default config.json's torch_dtype
	// (bfloat16, float16, float32), else F32.
	DType safetensors.DType
	// MaxShardBytes splits the weights into shards of at most this size
	// (model-0000X-of-0000N.safetensors) with model.safetensors.index.json,
	// as transformers' save_pretrained does; 0 means its default,
	// DefaultMaxShardBytes (5 GB); a negative size writes one
	// model.safetensors whatever the size.
	MaxShardBytes int64
	// TokenizerDir, when set, is a folder whose tokenizer files
	// (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
	// tokenizer.model, chat_template.jinja) are copied next to the weights.
	TokenizerDir string
	// EOSTokenIDs are added to generation_config.json's eos_token_id after
	// config.json's: put the chat template's end-of-turn token here so
	// generation stops at the end of an answer.
	EOSTokenIDs []int
}

// DefaultMaxShardBytes is transformers' default max_shard_size, "5GB"
// (decimal gigabytes).
const DefaultMaxShardBytes = 5_000_000_000

var torchDTypes = map[string]safetensors.DType{"bfloat16": safetensors.BF16, "float16": safetensors.F16, "float32": safetensors.F32}

// tokenizerFiles are copied by Save.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "chat_template.jinja"}

// Save writes the model in the Hugging Face layout transformers, vLLM and
// llama.cpp's converter read: config.json, generation_config.json (the
// loaded one's settings kept, EOSTokenIDs added), the weights (one file or
// shards plus index) and the tokenizer files. LoRA adapters are not
// included: call SaveMerged, MergeLoRA first, or SaveAdapter.
func (m *Model) Save(dir string, opts SaveOptions) error { return m.save(dir, opts, false) }

// SaveMerged is Save with the LoRA adapters folded into the weights they
// adapt (W + scale·B·A, computed in float32 per weight as it is written);
// the model itself keeps its adapters, so training can go on.
func (m *Model) SaveMerged(dir string, opts SaveOptions) error {
	if m.lora.cfg == nil {
		return errors.New("train: SaveMerged: the model has no adapters; use Save")
	}
	return m.save(dir, opts, true)
}

func (m *Model) save(dir string, opts SaveOptions, merge bool) error {
	dt := opts.DType
	if dt == "" {
		dt = torchDTypes[m.Config.TorchDType]
		if dt == "" {
			dt = safetensors.F32
		}
	}
	kind, ok := stToGotch[dt]
	if !ok {
		return fmt.Errorf("train: SaveOptions.DType %q: want BF16, F16, F32 or F64", dt)
	}
	for _, id := range opts.EOSTokenIDs {
		if id < 0 || id >= m.Config.VocabSize {
			return fmt.Errorf("train: SaveOptions.EOSTokenIDs: %d is outside the vocabulary (%d)", id, m.Config.VocabSize)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	adapted := map[**ts.Tensor]*loraLinear{}
	if merge {
		for _, l := range m.adapters() {
			adapted[&l.Base.Weight] = l
		}
	}
	var srcs []safetensors.Source
	for _, b := range m.bindings() {
		t := *b.t
		data := func() ([]byte, error) { return m.saveBytes(t, kind) }
		if l := adapted[b.t]; l != nil {
			data = func() ([]byte, error) { return m.mergedBytes(l, kind) }
		}
		srcs = append(srcs, safetensors.Source{
			Tensor: safetensors.Tensor{Name: b.name, DType: dt, Shape: b.shape},
			Data:   data,
		})
	}
	shard := opts.MaxShardBytes
	if shard == 0 {
		shard = DefaultMaxShardBytes
	}
	if _, err := safetensors.WriteSharded(dir, srcs, shard, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("train: saving %s: %w", dir, err)
	}
	cfg := *m.Config
	cfg.TorchDType = map[safetensors.DType]string{safetensors.BF16: "bfloat16", safetensors.F16: "float16", safetensors.F32: "float32", safetensors.F64: "float64"}[dt]
	js, err := json.Marshal(&cfg)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := writeJSONFile(filepath.Join(dir, "config.json"), js); err != nil {
		return err
	}
	// The loaded generation_config.json's settings (sampling defaults,
	// pad id, …) are kept as they were; without one, transformers' own
	// from-config file.
	gen := map[string]any{}
	for k, v := range m.genConfig {
		gen[k] = v
	}
	if len(gen) == 0 {
		gen["_from_model_config"] = true
		if m.Config.BOSTokenID != nil {
			gen["bos_token_id"] = *m.Config.BOSTokenID
		}
	}
	eos := m.StopIDs()
	for _, id := range opts.EOSTokenIDs {
		if !slices.Contains(eos, id) {
			eos = append(eos, id)
		}
	}
	switch len(eos) {
	case 0:
		delete(gen, "eos_token_id")
	case 1:
		gen["eos_token_id"] = eos[0]
	default:
		gen["eos_token_id"] = eos
	}
	js, err = json.MarshalIndent(gen, "", "  ")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := writeJSONFile(filepath.Join(dir, "generation_config.json"), js); err != nil {
		return err
	}
	if opts.TokenizerDir != "" {
		return CopyTokenizerFiles(opts.TokenizerDir, dir)
	}
	return nil
}

// CopyTokenizerFiles copies the tokenizer files of srcDir (tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, tokenizer.model,
// chat_template.jinja; those present) into dstDir, so a saved model or
// adapter folder serves on its own. A srcDir with none of them is an error.
func CopyTokenizerFiles(srcDir, dstDir string) error {
	copied := 0
	for _, f := range tokenizerFiles {
		err := copyFile(filepath.Join(srcDir, f), filepath.Join(dstDir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("train: copying the tokenizer: %w", err)
		}
		copied++
	}
	if copied == 0 {
		return fmt.Errorf("train: tokenizer folder %s holds none of %s", srcDir, strings.Join(tokenizerFiles, ", "))
	}
	return nil
}

func writeJSONFile(path string, js []byte) error {
	if err := os.WriteFile(path, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// tensorBytes returns t's elements as little-endian bytes of kind, copied
// to the host. libtorch does the conversion (round to nearest even).
func tensorBytes(t *ts.Tensor, kind gotch.DType) ([]byte, error) {
	c := t.MustDetach(false)
	if c.DType() != kind {
		c = c.MustTotype(kind, true)
	}
	if !sameDevice(c.MustDevice(), gotch.CPU) {
		c = c.MustTo(gotch.CPU, true)
	}
	c = c.MustContiguous(true)
	defer c.MustDrop()
	n := int(c.Numel())
	size := int(kind.Size())
	buf := make([]byte, n*size)
	if n == 0 {
		return buf, nil
	}
	// CopyData wants a Go slice of the element type: alias the byte
	// buffer with an integer slice of the same width and reinterpret the
	// tensor's bits as integers.
	var dst any
	var view gotch.DType
	switch size {
	case 2:
		dst, view = unsafe.Slice((*int16)(unsafe.Pointer(&buf[0])), n), gotch.Int16
	case 4:
		dst, view = unsafe.Slice((*int32)(unsafe.Pointer(&buf[0])), n), gotch.Int
	case 8:
		dst, view = unsafe.Slice((*int64)(unsafe.Pointer(&buf[0])), n), gotch.Int64
	default:
		return nil, fmt.Errorf("train: cannot store %v tensors", kind)
	}
	v := c.MustViewDtype(view, false)
	defer v.MustDrop()
	if err := v.CopyData(dst, uint(n)); err != nil {
		return nil, fmt.Errorf("train: copying a tensor to the host: %w", err)
	}
	return buf, nil
}

// mergedBytes returns l's weight with its adapter folded in, W +
// scale·B·A, summed in float32 and stored as kind.
func (m *Model) mergedBytes(l *loraLinear, kind gotch.DType) ([]byte, error) {
	var out []byte
	var err error
	torchx.NoGrad(func() {
		// Out of place: the float32 view of an fp32 weight is the weight.
		w := l.Base.Weight.MustTotype(gotch.Float, false)
		d := l.B.Weight.MustMatmul(l.A.Weight, false).MustMulScalar(ts.FloatScalar(m.lora.cfg.scale()), true)
		merged := w.MustAdd(d, false)
		w.MustDrop()
		d.MustDrop()
		out, err = tensorBytes(merged, kind)
		merged.MustDrop()
	})
	return out, err
}

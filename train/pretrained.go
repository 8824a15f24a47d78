package train

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train/hfconfig"
)

// Pretrained is a model with its tokenizer and where both came from: what
// a program opens, trains, evaluates and exports. A LoRA run's folder is
// a PEFT adapter on a base; Open loads either kind, and Export writes
// either kind back.
type Pretrained struct {
	Model     *Model
	Tokenizer *tokenize.Tokenizer
	// Dir is the folder opened (the adapter folder for an adapter).
	Dir string
	// BaseDir is the full model folder the base weights came from: Dir
	// itself, or the adapter's base. An exported adapter names it as
	// base_model_name_or_path.
	BaseDir string
	// AdapterDir is the PEFT adapter folder loaded on BaseDir; "" when
	// the model was opened without one.
	AdapterDir string
	// TokenizerDir is the folder whose tokenizer files Export copies.
	TokenizerDir string
}

// OpenOptions configures Open.
type OpenOptions struct {
	ModelOptions
	// Base is the full model folder an adapter folder is loaded on; by
	// default adapter_config.json's base_model_name_or_path (see
	// hfconfig.Locate for where a relative path is looked for).
	Base string
	// Tokenizer is a tokenizer folder or tokenizer.json; by default the
	// opened folder's, else the base's.
	Tokenizer string
	// Shard, with World > 1, loads a full model folder for ZeroStage 3 as
	// LoadModelSharded does: of each tensor only rank Shard.Rank's piece.
	// An adapter folder's base is loaded whole, as LoRA needs.
	Shard ZeroShard
}

// ZeroShard is one rank's place in a ZeRO stage-3 group.
type ZeroShard struct{ Rank, World int }

// ExportMode says what Export writes.
type ExportMode int

const (
	// ExportAdapter writes the LoRA adapter in PEFT's layout
	// (adapter_config.json naming BaseDir, adapter_model.safetensors) with
	// the tokenizer files.
	ExportAdapter ExportMode = iota
	// ExportMerged writes a full Hugging Face model folder: the weights
	// (the adapters folded in, when there are any; sharded as
	// transformers does above 5 GB), config.json, generation_config.json
	// and the tokenizer files.
	ExportMerged
)

// String names the mode.
func (e ExportMode) String() string {
	switch e {
	case ExportAdapter:
		return "adapter"
	case ExportMerged:
		return "merged"
	}
	return fmt.Sprintf("ExportMode(%d)", int(e))
}

// Open loads dir, a Hugging Face model folder (config.json, safetensors,
// tokenizer) or a PEFT LoRA adapter folder (adapter_config.json), which is
// loaded on its base: the result trains the same adapter on. The model
// goes to opts.Device in opts.DType.
func Open(dir string, opts OpenOptions) (*Pretrained, error) {
	loc, err := hfconfig.Locate(dir, opts.Base)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	tokDir := opts.Tokenizer
	if tokDir == "" {
		tokDir = loc.ModelDir
		if loc.AdapterDir != "" && hasTokenizer(loc.AdapterDir) {
			tokDir = loc.AdapterDir
		}
	}
	tok, err := tokenize.Load(tokDir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(tokDir); err == nil && !st.IsDir() {
		tokDir = filepath.Dir(tokDir)
	}
	var m *Model
	if opts.Shard.World > 1 && loc.AdapterDir == "" {
		m, err = LoadModelSharded(loc.ModelDir, opts.ModelOptions, opts.Shard.Rank, opts.Shard.World)
	} else {
		m, err = LoadModel(loc.ModelDir, opts.ModelOptions)
	}
	if err != nil {
		return nil, err
	}
	if loc.AdapterDir != "" {
		if err := LoadAdapter(m, loc.AdapterDir); err != nil {
			m.Drop()
			return nil, err
		}
	}
	p := &Pretrained{Model: m, Tokenizer: tok, Dir: dir, BaseDir: loc.ModelDir, AdapterDir: loc.AdapterDir, TokenizerDir: tokDir}
	if err := p.check(); err != nil {
		m.Drop()
		return nil, err
	}
	return p, nil
}

// check refuses a tokenizer with ids the model's embedding has no row for.
func (p *Pretrained) check() error {
	if v := p.Tokenizer.VocabSize(); v > p.Model.Config.VocabSize {
		return fmt.Errorf("train: the tokenizer (%s) has %d tokens but the model's vocabulary (%s) has %d", p.TokenizerDir, v, p.BaseDir, p.Model.Config.VocabSize)
	}
	return nil
}

func hasTokenizer(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "tokenizer.json"))
	return err == nil
}

// StopIDs are the ids generation stops at: the model's EOS ids
// (config.json, generation_config.json) and the tokenizer's end-of-turn
// and EOS tokens.
func (p *Pretrained) StopIDs() []int {
	ids := p.Model.StopIDs()
	for _, id := range p.Tokenizer.StopIDs() {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// PadID is the id batches are padded with (the tokenizer's pad token, else
// its EOS, else 0).
func (p *Pretrained) PadID() int { return p.Tokenizer.PadID() }

// Export writes the model to dir as mode says; the tokenizer files go
// along, and a full model's generation_config.json lists the tokenizer's
// end-of-turn token among its EOS ids, so generation stops at the end of
// an answer. The model is not changed: a merged export folds the adapters
// in as it writes, so training can go on.
func (p *Pretrained) Export(dir string, mode ExportMode) error {
	return p.ExportWith(dir, mode, SaveOptions{})
}

// ExportWith is Export with the precision and shard size of a full model
// taken from opts (its TokenizerDir and EOSTokenIDs are Pretrained's).
func (p *Pretrained) ExportWith(dir string, mode ExportMode, opts SaveOptions) error {
	m := p.Model
	switch mode {
	case ExportAdapter:
		if m.LoRA() == nil {
			return errors.New("train: Export: the model has no LoRA adapter to export; use ExportMerged")
		}
		if err := m.SaveAdapter(dir, p.BaseDir); err != nil {
			return err
		}
		if p.TokenizerDir == "" {
			return nil
		}
		return CopyTokenizerFiles(p.TokenizerDir, dir)
	case ExportMerged:
		opts.TokenizerDir, opts.EOSTokenIDs = p.TokenizerDir, p.Tokenizer.StopIDs()
		if m.LoRA() != nil {
			return m.SaveMerged(dir, opts)
		}
		return m.Save(dir, opts)
	}
	return fmt.Errorf("train: Export: unknown mode %v", mode)
}

// Drop frees the model's tensors.
func (p *Pretrained) Drop() { p.Model.Drop() }

// ParseShardSize reads a shard size as transformers' max_shard_size takes
// it: a number of bytes, or a number with a unit, decimal (KB, MB, GB, TB:
// powers of 1000) or binary (KiB, MiB, GiB, TiB: powers of 1024); "5GB" is
// 5,000,000,000 bytes.
func ParseShardSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := map[string]float64{
		"": 1, "B": 1,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
	}[strings.ToUpper(unit)]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || num == "" || v*mult < 1 || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("train: shard size %q: want a positive size such as 5GB, 500MB, 2GiB or a number of bytes", s)
	}
	return int64(v * mult), nil
}

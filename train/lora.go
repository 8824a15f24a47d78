package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// LoRAConfig configures low-rank adapters as PEFT's LoraConfig does: each
// targeted projection W gets y = x·Wᵀ + (Alpha/Rank)·dropout(x)·Aᵀ·Bᵀ with A
// [Rank, in] and B [out, Rank], B starting at zero.
type LoRAConfig struct {
	Rank    int     // r (default 8)
	Alpha   float64 // lora_alpha (default 16)
	Dropout float64 // lora_dropout, applied in training mode only
	// TargetModules are projection names: q_proj, k_proj, v_proj, o_proj,
	// gate_proj, up_proj, down_proj (Llama, Mistral); w1, w2, w3 and gate
	// (the router) for Mixtral. Default q_proj and v_proj, as PEFT's.
	TargetModules []string
}

func (c *LoRAConfig) ensureDefaults() {
	if c.Rank == 0 {
		c.Rank = 8
	}
	if c.Alpha == 0 {
		c.Alpha = 16
	}
	if len(c.TargetModules) == 0 {
		c.TargetModules = []string{"q_proj", "v_proj"}
	}
}

func (c *LoRAConfig) scale() float64 { return c.Alpha / float64(c.Rank) }

// peftPrefix is what PEFT puts before the model's own module path.
const peftPrefix = "base_model.model."

// loraState is the model-wide state its adapters read.
type loraState struct {
	cfg *LoRAConfig // nil without adapters
	// off switches adapters off (for a frozen reference model).
	off bool
	// train points at the model's training flag: dropout only in training.
	train *bool
}

// loraLinear wraps a projection's Linear with a LoRA adapter: A [r, in]
// and B [out, r], both PEFT's nn.Linear modules lora_A and lora_B, fp32
// whatever the base's dtype.
type loraLinear struct {
	Base *Linear `hf:""`
	A    *Linear `hf:"lora_A,adapter"`
	B    *Linear `hf:"lora_B,adapter"`
	s    *loraState
}

// Forward is the base projection plus scale·B·A·dropout(x) while adapters
// are on.
func (l *loraLinear) Forward(x *ts.Tensor) *ts.Tensor {
	y := l.Base.Forward(x)
	if l.s.off {
		return y
	}
	// The adapters are fp32 whatever the base's dtype: PEFT casts the
	// input to the adapter's dtype and the result back.
	in := x
	if x.DType() != l.A.Weight.DType() {
		in = x.MustTotype(l.A.Weight.DType(), false)
	}
	if *l.s.train && l.s.cfg.Dropout > 0 {
		dr := ts.MustDropout(in, l.s.cfg.Dropout, true)
		if in != x {
			in.MustDrop()
		}
		in = dr
	}
	d := l.A.Forward(in)
	if in != x {
		in.MustDrop()
	}
	d2 := l.B.Forward(d).MustMulScalar(ts.FloatScalar(l.s.cfg.scale()), true)
	d.MustDrop()
	if d2.DType() != y.DType() {
		d2 = d2.MustTotype(y.DType(), true)
	}
	y = y.MustAdd(d2, true)
	d2.MustDrop()
	return y
}

// drop frees the adapter's matrices (not the base).
func (l *loraLinear) drop() {
	l.A.Weight.MustDrop()
	l.B.Weight.MustDrop()
	l.A.Weight, l.B.Weight = nil, nil
}

// adapters lists the model's LoRA-wrapped projections.
func (m *Model) adapters() []*loraLinear {
	var out []*loraLinear
	for _, p := range m.projections() {
		if l, ok := p.get().(*loraLinear); ok {
			out = append(out, l)
		}
	}
	return out
}

// ApplyLoRA adds adapters to m's target projections. Afterwards only the
// adapters are trainable (NamedParameters marks the base frozen).
func ApplyLoRA(m *Model, cfg LoRAConfig) error {
	if m.lora.cfg != nil {
		return fmt.Errorf("train: ApplyLoRA: the model already has adapters")
	}
	cfg.ensureDefaults()
	if cfg.Rank < 0 || cfg.Alpha <= 0 || cfg.Dropout < 0 || cfg.Dropout >= 1 {
		return fmt.Errorf("train: ApplyLoRA: rank %d, alpha %g, dropout %g: want rank > 0, alpha > 0, 0 ≤ dropout < 1", cfg.Rank, cfg.Alpha, cfg.Dropout)
	}
	var hit []namedProjection
	var names []string
	for _, p := range m.projections() {
		if slices.Contains(cfg.TargetModules, p.module()) {
			hit = append(hit, p)
		}
		if !slices.Contains(names, p.module()) {
			names = append(names, p.module())
		}
	}
	for _, t := range cfg.TargetModules {
		if !slices.Contains(names, t) {
			return fmt.Errorf("train: ApplyLoRA: target module %q is not in a %s; want some of %s", t, m.Config.Architecture, strings.Join(names, ", "))
		}
	}
	torchx.ManualSeed(m.opts.Seed + 1)
	r := int64(cfg.Rank)
	for _, p := range hit {
		base := p.get().(*Linear)
		out, in := base.out, base.in
		// PEFT's default: A ~ kaiming_uniform(a=√5) = U(±1/√in), B = 0.
		bound := 1 / math.Sqrt(float64(in))
		a := ts.MustZeros([]int64{r, in}, gotch.Float, m.opts.device())
		a.MustUniform_(-bound, bound)
		a.MustRequiresGrad_(true)
		b := ts.MustZeros([]int64{out, r}, gotch.Float, m.opts.device())
		b.MustRequiresGrad_(true)
		A, B := &Linear{Weight: a, out: r, in: in}, &Linear{Weight: b, out: out, in: r}
		p.field.Set(reflect.ValueOf(&loraLinear{Base: base, A: A, B: B, s: &m.lora}))
	}
	m.lora.cfg = &cfg
	m.lora.off = false
	m.setBaseTrainable(false)
	return nil
}

// setBaseTrainable switches requires_grad of every base tensor (embedding,
// projections, norms, head): off under LoRA, so backward neither computes
// nor keeps a gradient for the frozen base.
func (m *Model) setBaseTrainable(on bool) {
	for _, b := range m.bindings() {
		if *b.t != nil {
			(*b.t).MustRequiresGrad_(on)
		}
	}
}

// unwrapAdapters puts every wrapped projection's base back in its place,
// calling fold on each adapter first (nil: none), and frees the adapters.
func (m *Model) unwrapAdapters(fold func(*loraLinear)) {
	for _, p := range m.projections() {
		l, ok := p.get().(*loraLinear)
		if !ok {
			continue
		}
		if fold != nil {
			fold(l)
		}
		l.drop()
		p.field.Set(reflect.ValueOf(l.Base))
	}
}

// SetAdaptersEnabled switches LoRA adapters on or off without removing
// them: with adapters off the model is its base (DPO's reference model).
func (m *Model) SetAdaptersEnabled(on bool) { m.lora.off = !on }

// LoRA returns the adapters' configuration, or nil without adapters.
func (m *Model) LoRA() *LoRAConfig {
	if m.lora.cfg == nil {
		return nil
	}
	c := *m.lora.cfg
	c.TargetModules = slices.Clone(c.TargetModules)
	return &c
}

// MergeLoRA folds the adapters into the base weights (W += scale·B·A) and
// removes them; the model is then fully trainable again.
func (m *Model) MergeLoRA() error {
	if m.lora.cfg == nil {
		return fmt.Errorf("train: MergeLoRA: the model has no adapters")
	}
	scale := m.lora.cfg.scale()
	torchx.NoGrad(func() {
		m.unwrapAdapters(func(l *loraLinear) {
			d := l.B.Weight.MustMatmul(l.A.Weight, false).MustMulScalar(ts.FloatScalar(scale), true)
			l.Base.Weight.MustAdd_(d)
			d.MustDrop()
		})
	})
	m.lora.cfg = nil
	m.lora.off = false
	m.setBaseTrainable(true)
	return nil
}

type peftConfig struct {
	PeftType          string   `json:"peft_type"`
	TaskType          string   `json:"task_type"`
	R                 int      `json:"r"`
	LoraAlpha         float64  `json:"lora_alpha"`
	LoraDropout       float64  `json:"lora_dropout"`
	TargetModules     []string `json:"target_modules"`
	Bias              string   `json:"bias"`
	FanInFanOut       bool     `json:"fan_in_fan_out"`
	InferenceMode     bool     `json:"inference_mode"`
	UseRSLoRA         bool     `json:"use_rslora"`
	UseDoRA           bool     `json:"use_dora"`
	BaseModel         string   `json:"base_model_name_or_path"`
	ModulesToSave     []string `json:"modules_to_save"`
	InitLoraWeights   bool     `json:"init_lora_weights"`
	LayersToTransform []int    `json:"layers_to_transform"`
}

// SaveAdapter writes the adapters in PEFT's layout: adapter_config.json and
// adapter_model.safetensors with keys such as
// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.
// baseModel names the base checkpoint in the config (may be empty).
func (m *Model) SaveAdapter(dir, baseModel string) error {
	if m.lora.cfg == nil {
		return fmt.Errorf("train: SaveAdapter: the model has no adapters")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	// The adapters are fp32 (PEFT's default, whatever the base's dtype)
	// and PEFT saves them as they are.
	dt := safetensors.F32
	kind := stToGotch[dt]
	var srcs []safetensors.Source
	for _, b := range m.adapterBindings() {
		t := *b.t
		srcs = append(srcs, safetensors.Source{
			Tensor: safetensors.Tensor{Name: peftPrefix + b.name, DType: dt, Shape: m.saveShape(t)},
			Data:   func() ([]byte, error) { return m.saveBytes(t, kind) },
		})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), srcs, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	js, err := json.MarshalIndent(m.peftConfig(baseModel), "", "  ")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return writeJSONFile(filepath.Join(dir, "adapter_config.json"), js)
}

// peftConfig is the adapters' adapter_config.json.
func (m *Model) peftConfig(baseModel string) peftConfig {
	return peftConfig{
		PeftType: "LORA", TaskType: "CAUSAL_LM", R: m.lora.cfg.Rank, LoraAlpha: m.lora.cfg.Alpha, LoraDropout: m.lora.cfg.Dropout,
		TargetModules: m.lora.cfg.TargetModules, Bias: "none", InferenceMode: true, BaseModel: baseModel, InitLoraWeights: true,
	}
}

// LoadAdapter adds the PEFT adapter saved in dir to m.
func LoadAdapter(m *Model, dir string) error {
	cfgPath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return fmt.Errorf("train: %s: %v (target_modules must be a list of names)", cfgPath, err)
	}
	switch {
	case pc.PeftType != "LORA":
		return fmt.Errorf("train: %s: peft_type %q; only LORA is supported", cfgPath, pc.PeftType)
	case pc.UseRSLoRA || pc.UseDoRA || pc.FanInFanOut:
		return fmt.Errorf("train: %s: use_rslora, use_dora and fan_in_fan_out are not supported", cfgPath)
	case pc.Bias != "" && pc.Bias != "none":
		return fmt.Errorf("train: %s: bias %q is not supported; want none", cfgPath, pc.Bias)
	case len(pc.ModulesToSave) > 0 || len(pc.LayersToTransform) > 0:
		return fmt.Errorf("train: %s: modules_to_save and layers_to_transform are not supported", cfgPath)
	case pc.R <= 0:
		return fmt.Errorf("train: %s: r = %d; want a positive rank", cfgPath, pc.R)
	}
	if err := ApplyLoRA(m, LoRAConfig{Rank: pc.R, Alpha: pc.LoraAlpha, Dropout: pc.LoraDropout, TargetModules: pc.TargetModules}); err != nil {
		return err
	}
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.OpenFile(path)
	if err != nil {
		m.dropAdapters()
		return fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	bs := m.adapterBindings()
	for i := range bs {
		bs[i].name = peftPrefix + bs[i].name
	}
	if err := m.loadTensors(safetensors.NewSet(f), bs, path); err != nil {
		m.dropAdapters()
		return err
	}
	return nil
}

func (m *Model) dropAdapters() {
	m.unwrapAdapters(nil)
	m.lora.cfg = nil
	m.setBaseTrainable(true)
}

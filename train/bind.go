package train

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// The one binding of a model's tensors to Hugging Face names. Layers tag
// their fields with the module path they hold (`hf:"self_attn"`,
// `hf:"q_proj"`, `hf:"weight"`); walk follows the tags from the model's
// root and yields every tensor under its full name, with its shape, and
// every projection under its module path. Loading, saving,
// NamedParameters, LoRA targets, ZeRO units and parameter counts all read
// the model through it, so a name is written once, in a tag.
//
// Tag rules: a dotted tag is a path of several modules
// ("block_sparse_moe.gate"); an empty tag inlines the field's value under
// its parent's path (the feed-forward block, which names its own modules,
// and a LoRA wrapper's base); a slice appends each element's index; the
// option ",adapter" marks LoRA matrices. Nil pointers and interfaces (the
// head of a tied model) hold nothing.

// binding ties one model tensor to its Hugging Face name, shape and role.
type binding struct {
	name    string
	t       **ts.Tensor
	shape   []int64
	noDecay bool
	norm    bool
	// adapter marks a LoRA matrix: fp32 whatever the base's dtype (PEFT's
	// default) and always trainable.
	adapter bool
}

// shaped is a layer that holds one tensor; its size comes from the config
// the layer was built for.
type shaped interface{ shape() []int64 }

// namedProjection is a projection field with its module path
// ("model.layers.3.self_attn.q_proj"), the key LoRA adapters hang from.
type namedProjection struct {
	path  string
	field reflect.Value // settable, of type projection
}

func (p namedProjection) get() projection { return p.field.Interface().(projection) }

// module is the projection's own name ("q_proj", "w1", "gate"), what
// LoRA's target_modules match.
func (p namedProjection) module() string { return p.path[strings.LastIndexByte(p.path, '.')+1:] }

var (
	projectionType = reflect.TypeFor[projection]()
	tensorType     = reflect.TypeFor[*ts.Tensor]()
)

// walker receives what walk finds.
type walker struct {
	tensor     func(binding)
	projection func(namedProjection)
}

// walk visits v (a pointer to a tagged struct) under the path prefix.
func (w *walker) walk(prefix string, v reflect.Value, adapter bool) {
	if v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Interface {
			v = v.Elem()
		}
	}
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	s, isLeaf := v.Addr().Interface().(shaped)
	_, isNorm := v.Addr().Interface().(interface{ isNorm() })
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("hf")
		if !ok {
			continue
		}
		name, opt, _ := strings.Cut(tag, ",")
		path := joinPath(prefix, name)
		fv := v.Field(i)
		ad := adapter || opt == "adapter"
		switch {
		case f.Type == tensorType:
			if isLeaf && w.tensor != nil {
				w.tensor(binding{name: path, t: fv.Addr().Interface().(**ts.Tensor), shape: s.shape(), noDecay: isNorm, norm: isNorm, adapter: ad})
			}
		case f.Type == projectionType:
			if fv.IsNil() {
				continue
			}
			if w.projection != nil {
				w.projection(namedProjection{path: path, field: fv})
			}
			w.walk(path, fv, ad)
		case f.Type.Kind() == reflect.Slice:
			for j := range fv.Len() {
				w.walk(path+"."+strconv.Itoa(j), fv.Index(j), ad)
			}
		default:
			w.walk(path, fv, ad)
		}
	}
}

func joinPath(prefix, name string) string {
	switch {
	case name == "":
		return prefix
	case prefix == "":
		return name
	}
	return prefix + "." + name
}

// allBindings lists every tensor of the model, base and adapters, in the
// order of the struct fields (that of the Hugging Face module tree).
func (m *Model) allBindings() []binding {
	var bs []binding
	w := walker{tensor: func(b binding) { bs = append(bs, b) }}
	w.walk("", reflect.ValueOf(&m.net), false)
	return bs
}

// bindings lists the base model's tensors (no adapters).
func (m *Model) bindings() []binding {
	return m.filterBindings(false)
}

// adapterBindings lists the LoRA matrices.
func (m *Model) adapterBindings() []binding {
	return m.filterBindings(true)
}

func (m *Model) filterBindings(adapter bool) []binding {
	var out []binding
	for _, b := range m.allBindings() {
		if b.adapter == adapter {
			out = append(out, b)
		}
	}
	return out
}

// projections lists every projection of the model in a stable order.
func (m *Model) projections() []namedProjection {
	var ps []namedProjection
	w := walker{projection: func(p namedProjection) { ps = append(ps, p) }}
	w.walk("", reflect.ValueOf(&m.net), false)
	return ps
}

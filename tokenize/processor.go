package tokenize

import (
	"encoding/json"
	"fmt"
)

// processor is one step of tokenizer.json's "post_processor" for a single
// sequence: it adds special tokens (when asked to) and may trim offsets.
type processor interface {
	process(enc *encodingBuf, addSpecial bool)
}

// encodingBuf is an encoding under construction. offs is nil when offsets
// are not tracked; raw holds, per token, the input bytes it stands for
// (used to trim offsets of byte-level tokens), nil unless needed.
type encodingBuf struct {
	ids  []int
	offs [][2]int
	raw  []string
}

type seqProcessor []processor

func (q seqProcessor) process(enc *encodingBuf, addSpecial bool) {
	for _, p := range q {
		p.process(enc, addSpecial)
	}
}

// templateItem is a special token's ids or the sequence itself (ids nil).
type templateItem struct {
	ids []int
	seq bool
}

// templateProcessor is TemplateProcessing for a single sequence.
type templateProcessor struct{ single []templateItem }

func (tp templateProcessor) process(enc *encodingBuf, addSpecial bool) {
	if !addSpecial {
		return
	}
	out := encodingBuf{}
	track := enc.offs != nil
	for _, it := range tp.single {
		if it.seq {
			out.ids = append(out.ids, enc.ids...)
			if track {
				out.offs = append(out.offs, enc.offs...)
			}
			out.raw = append(out.raw, enc.raw...)
			continue
		}
		out.ids = append(out.ids, it.ids...)
		for range it.ids {
			if track {
				out.offs = append(out.offs, [2]int{0, 0})
			}
			if enc.raw != nil {
				out.raw = append(out.raw, "")
			}
		}
	}
	*enc = out
}

// wrapProcessor is RobertaProcessing and BertProcessing for a single
// sequence: cls, the sequence, sep; Roberta can also trim offsets.
type wrapProcessor struct {
	cls, sep int
	trim     *byteLevelProcessor
}

func (wp wrapProcessor) process(enc *encodingBuf, addSpecial bool) {
	if wp.trim != nil {
		wp.trim.process(enc, addSpecial)
	}
	if !addSpecial {
		return
	}
	templateProcessor{single: []templateItem{{ids: []int{wp.cls}}, {seq: true}, {ids: []int{wp.sep}}}}.process(enc, true)
}

// byteLevelProcessor trims the spaces at either end of each token out of
// its offsets when trim_offsets is set.
type byteLevelProcessor struct {
	trimOffsets    bool
	addPrefixSpace bool
}

func (bp byteLevelProcessor) process(enc *encodingBuf, _ bool) {
	if !bp.trimOffsets || enc.offs == nil || enc.raw == nil {
		return
	}
	for i, tok := range enc.raw {
		lead, trail := 0, 0
		for lead < len(tok) && tok[lead] == ' ' {
			lead++
		}
		for trail < len(tok)-lead && tok[len(tok)-1-trail] == ' ' {
			trail++
		}
		o := &enc.offs[i]
		if lead > 0 {
			if (i == 0 || o[0] == 0) && bp.addPrefixSpace && lead == 1 {
				lead = 0
			}
			o[0] = min(o[0]+lead, o[1])
		}
		if trail > 0 && o[1] >= trail {
			o[1] = max(o[1]-trail, o[0])
		}
	}
}

func parseProcessor(raw json.RawMessage) (processor, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var h struct {
		Type          string            `json:"type"`
		Processors    []json.RawMessage `json:"processors"`
		Single        []json.RawMessage `json:"single"`
		SpecialTokens map[string]struct {
			ID  string `json:"id"`
			IDs []int  `json:"ids"`
		} `json:"special_tokens"`
		TrimOffsets    *bool           `json:"trim_offsets"`
		AddPrefixSpace *bool           `json:"add_prefix_space"`
		Sep            json.RawMessage `json:"sep"`
		Cls            json.RawMessage `json:"cls"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	switch h.Type {
	case "Sequence":
		var q seqProcessor
		for i, r := range h.Processors {
			p, err := parseProcessor(r)
			if err != nil {
				return nil, fmt.Errorf("post-processor %d of Sequence: %w", i, err)
			}
			if p != nil {
				q = append(q, p)
			}
		}
		return q, nil
	case "TemplateProcessing":
		var tp templateProcessor
		for i, r := range h.Single {
			var it struct {
				SpecialToken *struct{ ID string } `json:"SpecialToken"`
				Sequence     *struct{ ID string } `json:"Sequence"`
			}
			if err := json.Unmarshal(r, &it); err != nil {
				return nil, fmt.Errorf("TemplateProcessing: single item %d: %w", i, err)
			}
			switch {
			case it.Sequence != nil:
				tp.single = append(tp.single, templateItem{seq: true})
			case it.SpecialToken != nil:
				st, ok := h.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("TemplateProcessing: special token %q is not in special_tokens", it.SpecialToken.ID)
				}
				tp.single = append(tp.single, templateItem{ids: st.IDs})
			default:
				return nil, fmt.Errorf("TemplateProcessing: single item %d is neither SpecialToken nor Sequence", i)
			}
		}
		return tp, nil
	case "ByteLevel":
		return byteLevelProcessor{
			trimOffsets:    h.TrimOffsets == nil || *h.TrimOffsets,
			addPrefixSpace: h.AddPrefixSpace == nil || *h.AddPrefixSpace,
		}, nil
	case "RobertaProcessing", "BertProcessing":
		var cls, sep struct {
			tok string
			id  int
		}
		for _, x := range []struct {
			raw json.RawMessage
			dst *struct {
				tok string
				id  int
			}
			name string
		}{{h.Cls, &cls, "cls"}, {h.Sep, &sep, "sep"}} {
			var pair []json.RawMessage
			if err := json.Unmarshal(x.raw, &pair); err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("%s: %s is not a [token, id] pair", h.Type, x.name)
			}
			if err := json.Unmarshal(pair[0], &x.dst.tok); err != nil {
				return nil, fmt.Errorf("%s: %s token: %w", h.Type, x.name, err)
			}
			if err := json.Unmarshal(pair[1], &x.dst.id); err != nil {
				return nil, fmt.Errorf("%s: %s id: %w", h.Type, x.name, err)
			}
		}
		wp := wrapProcessor{cls: cls.id, sep: sep.id}
		if h.Type == "RobertaProcessing" && (h.TrimOffsets == nil || *h.TrimOffsets) {
			wp.trim = &byteLevelProcessor{trimOffsets: true, addPrefixSpace: h.AddPrefixSpace == nil || *h.AddPrefixSpace}
		}
		return wp, nil
	}
	return nil, fmt.Errorf("post-processor type %q is not supported (supported: Sequence, TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing)", h.Type)
}

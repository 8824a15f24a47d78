// Package samples embeds pltune's own small Polish instruction corpus: the
// data the quickstart audits, trains on and aligns with. The samples were
// written for pltune in Polish; they are not PLLuMIC and not taken from it,
// but they use PLLuMIC's released JSON format so that the same readers handle
// both.
//
// PLLuMIC's files do not record where an instruction came from, so the
// instruction samples are split into one file per origin (organic, converted,
// synthetic) and the caller states the origin when reading each file. Within
// a file every conversation is a JSON object {conv_id, messages}; the system
// message comes first with seq -1 (often with empty content) and each
// user/assistant pair shares a seq number 0, 1, 2 …
//
// Converted samples name an invented source dataset in their source field,
// with uneven counts per source, so that per-source caps have something to
// cap. A few synthetic samples, marked with the subtype "calque-example",
// deliberately show the English-influenced style (Title Case, comma after
// "Z poważaniem", straight quotes, decimal point) that the style linter
// should flag; they are not models to train on.
//
// Samples, Pairs and Documents read the files with the corpus readers.
package samples

import (
	"embed"
	"io/fs"

	"github.com/pltune/pltune/corpus"
)

// The files in FS. Organic, Converted and Synthetic are PLLuMIC-format JSON
// arrays; Preferences is preference-pair JSONL and Pretrain raw Polish text
// for continual pre-training, one JSON object per line.
const (
	Organic     = "data/organic.json"
	Converted   = "data/converted.json"
	Synthetic   = "data/synthetic.json"
	Preferences = "data/preferences.jsonl"
	Pretrain    = "data/pretrain.jsonl"
)

//go:embed data
var data embed.FS

// FS returns the embedded sample files, addressed by the constants above.
func FS() fs.FS { return data }

// File is one instruction file of FS and the origin of every sample in it,
// which PLLuMIC's format cannot record and corpus.Options.Origin supplies.
type File struct {
	Name   string
	Origin corpus.Origin
}

// InstructionFiles returns the instruction files in the order organic,
// converted, synthetic.
func InstructionFiles() []File {
	return []File{
		{Organic, corpus.OriginOrganic},
		{Converted, corpus.OriginConverted},
		{Synthetic, corpus.OriginSynthetic},
	}
}

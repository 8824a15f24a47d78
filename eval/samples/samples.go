// Package samples holds pltune's own small evaluation sets, written for the
// project in Polish: PLCC-style open questions (plcc.jsonl), exam-style
// multiple choice in LLMzSzŁ's format (mc.jsonl), benign prompts that look
// risky and harmful prompts (refusal.jsonl), and prompts with concise
// reference answers (verbosity.jsonl).
//
// They are samples for trying the evaluation end to end, not the PLCC or
// LLMzSzŁ benchmarks: scores on them are not comparable with published
// results. README.md describes each file's fields. Task and Tasks read them
// as evaluation tasks (what pltune eval --task samples runs).
package samples

import (
	"embed"
	"io/fs"
)

//go:embed *.jsonl
var files embed.FS

// FS returns the sample files, named plcc.jsonl, mc.jsonl, refusal.jsonl and
// verbosity.jsonl at its root.
func FS() fs.FS { return files }

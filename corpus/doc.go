// Package corpus holds Polish instruction data: conversation samples and
// preference pairs, their file formats, validation, deduplication,
// composition statistics and mixing. It is pure Go and never needs libtorch.
//
// # Model
//
// A Sample is one conversation: an optional system prompt (Sample.System)
// and user/assistant turns in order, with the metadata of the PLLuMIC paper:
// Origin (organic, converted or synthetic), task Type and Subtype, Sources
// and Language. A PreferencePair is a prompt conversation with a chosen and a
// rejected continuation. Multi-turn data is first-class in both.
//
// # Formats
//
// Format names a file layout: PLLuMIC's released JSON array (and the same
// conversations one per line, as its synthetic extension ships), OpenAI
// messages JSONL, ShareGPT, Alpaca, PLLuM-Align preference JSONL,
// prompt/chosen/rejected triples, and a Parquet twin of each with the same
// fields as columns. DetectFormat sniffs a file; ParseFormat reads a name.
//
// # Reading
//
// A Reader (Open, NewReader, or the ReadSamples and ReadPairs helpers)
// streams records as iter.Seq2 values in constant memory: JSONL line by
// line, PLLuMIC element by element from its array, Parquet in row batches.
// Each record is decoded and validated (Validate, ValidatePair); a rejected
// record yields a *RecordError naming the file, the line or row, the message
// and the problem, wrapping one of the Err... sentinels. Under the Strict
// policy (the default) the first one ends the read; under Lenient it is
// written byte for byte to the quarantine (see Options.Quarantine) and the
// read goes on. The Accounting is exact: Read = Accepted + Rejected. Where a
// file does not give a sample's origin, Options.Origin does.
//
// Raw text for continual pre-training is read by a TextReader (or
// ReadText over files) as Documents: paragraphs separated by blank lines,
// or the "text" field of JSONL lines. Every byte is a document's or white
// space between documents; anything else (invalid UTF-8, a line that is
// not a JSON object with a "text" string) is a *RecordError with the file
// and line.
//
// Validation requires valid UTF-8, known roles, a system message only first,
// turns alternating from a user turn with no empty text, a final assistant
// turn, and the optional Limits. An empty system prompt is valid: PLLuMIC
// holds many.
//
// # Writing
//
// A Writer writes any format; every writer keeps the sample metadata, so
// reading back what was written gives the same samples. Alpaca holds only
// single-turn samples and triples only single-turn pairs; writing anything
// else fails with ErrNotRepresentable.
//
// # Auditing and preparing
//
// Dedup finds exact duplicates (NormalizeText of the whole sample) and near
// duplicates (MinHash and LSH over word shingles, Jaccard threshold 0.8 by
// default), keeping the first sample of each cluster. Stats counts samples by
// origin, type, source, turns and length (tokens through a TokenCounter) and
// renders the paper's composition table in Markdown. Mix builds a training
// mix with target shares by origin and per-source caps (1,000 per converted
// source by default); Split makes a stratified train/validation split. Both
// are deterministic under their seed.
package corpus

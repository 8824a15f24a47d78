// Package tokstore holds tokenized corpora on disk and streams them into
// training: a token store is a folder of token ids that a training run
// memory-maps, so memory stays flat however large the corpus is (the
// layout of Megatron-LM's indexed dataset and nanoGPT's memory-mapped
// bins, with a manifest like MosaicML streaming's index.json).
//
// # Layout
//
//	STORE/
//	  manifest.json        what the store holds (below); written last
//	  shards/NNNNN.ids     token ids, little-endian uint16 or uint32 (dtype)
//	  shards/NNNNN.idx     document index: docs+1 little-endian uint64
//	                       token offsets into the shard's ids, from 0 to
//	                       the shard's token count, non-decreasing
//	  shards/NNNNN.mask    chat stores only: one byte per token, 1 when
//	                       the token's label is trained, 0 when masked
//	  build/plan.json      the build's inputs, while building and after
//	  build/NNNNN.json     completion record of shard NNNNN
//
// manifest.json:
//
//	{
//	  "format": "pltune-tokstore", "version": 1,
//	  "type": "text" | "chat",
//	  "dtype": "uint16" | "uint32",        // uint16 when the vocabulary fits
//	  "tokenizer": {"sha256": "…", "vocab_size": 32000, "eos_id": 2},
//	  "docs": 1234, "tokens": 567890, "trained": 123456,
//	  "sources": [{"path": "a.jsonl", "size": 1048576}],
//	  "shards": [{"name": "00000", "source": 0, "offset": 0,
//	              "length": 1048576, "sha256": "…", "ids_sha256": "…",
//	              "docs": 12, "tokens": 5678, "trained": 1234}],
//	  "skipped": {"too_long": 0, "no_trainable": 0}
//	}
//
// A shard holds the documents of one byte range (a chunk) of one source
// file, in file order; sha256 is that of the chunk's bytes, so together the
// shards fingerprint every source byte; ids_sha256 is that of the shard's
// .ids file (a store written by Writer has no source bytes). The tokenizer's sha256 is that of
// its tokenizer.json (and tokenizer_config.json, whose chat template shapes
// a chat store), so a run can refuse a store made with another tokenizer.
//
// A text store (continual pre-training) holds documents encoded with the
// tokenizer's special tokens (BOS where the tokenizer adds one) and ended
// by EOS; laid end to end they are the token stream that TextRows cuts into
// rows of a fixed length, exactly as tokenize.PretrainRows does. A chat
// store holds one supervised sequence per sample, built by
// tokenize.SFTBuilder, with the trained-label mask; ChatRows gives each its
// own row or packs them as tokenize.Pack does.
//
// # Building
//
// Build tokenizes on all cores. Each chunk is a unit of work whose shard
// is written under a temporary name and renamed, then its completion record
// is written: an interrupted build run again with the same inputs skips the
// finished chunks. Under torchrun (RANK, WORLD_SIZE) rank r builds the
// chunks i with i mod WORLD_SIZE = r into the same folder (a shared file
// system), and whichever rank finds every record present writes the
// manifest.
//
// # Reading
//
// Open maps the shards read-only and checks the manifest against the files
// (sizes, counts, dtype) before anything is read; a corrupt index or an
// out-of-vocabulary id is reported when the row holding it is read. Rows
// are produced on demand from a row number, so a training loop can visit
// them in any order; Mix combines several stores' rows with weights and
// per-source token caps (OpenTraining opens a run's stores, checks their
// type and tokenizer and mixes them), SplitHeldOut holds out an evenly
// spread share of rows without listing them, and Loader walks rows in a seeded shuffled order
// that a resume continues mid-epoch, each rank taking disjoint rows.
package tokstore

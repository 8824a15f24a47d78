// Package tokenize turns text and corpus samples into token ids exactly as
// Hugging Face tokenizers do, renders chat templates, and builds training
// sequences (SFT, pre-training, preference) with their label masks, packing and
// collation. It is pure Go and never needs libtorch.
package tokenize

// Package safetensors reads and writes the safetensors checkpoint format used
// by Hugging Face: an 8-byte little-endian header length, a JSON header that
// maps tensor names to {dtype, shape, data_offsets}, then one flat byte buffer.
//
// Readers never load a whole file: Open parses and validates the header once
// and each tensor is then read on its own from an io.ReaderAt, so a model can
// be moved to its device one tensor at a time. The header is treated as
// hostile input. Its length is capped (MaxHeaderSize) and checked against the
// file size before any allocation, every dtype must be known, each tensor's
// byte range must equal its shape times its element size, and the ranges must
// tile the data buffer exactly (no overlap, no hole, nothing past the end), the
// same rules the reference Rust implementation enforces.
//
// Sharded checkpoints (model-00001-of-00003.safetensors plus
// model.safetensors.index.json) are opened as one Set by OpenDir, and written
// by WriteSharded. Conversions between bfloat16, float16 and float32 live in
// convert.go; they round to nearest even, as PyTorch does.
package safetensors
